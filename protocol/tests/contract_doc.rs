//! `docs/protocol.md` is the contract device makers implement from: its examples must
//! decode, cover every message kind, and its tables must match the code.

use std::collections::BTreeSet;

use protocol::command::CommandBody;
use protocol::reboot::{RebootClass, RebootReason};
use protocol::state::State;
use protocol::{decode, DecodeError, Limits, Message};

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// `(topic, json)` for every `<!-- topic: T -->` marker and the json block after it.
fn examples(doc: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some(i) = rest.find("<!-- topic: ") {
        rest = &rest[i + "<!-- topic: ".len()..];
        let (topic, after) = rest.split_once(" -->").expect("marker closes");
        let start = after.find("```json\n").expect("a json block follows") + "```json\n".len();
        let len = after[start..].find("\n```").expect("block closes");
        out.push((topic.to_owned(), after[start..start + len].to_owned()));
        rest = &after[start + len..];
    }
    out
}

/// The first backticked cell and the second cell of each row of the table after `marker`.
fn table(doc: &str, marker: &str) -> Vec<(String, String)> {
    let at = doc
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} missing"));
    doc[at..]
        .lines()
        .skip(1)
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| {
            let cells: Vec<_> = l.split('|').map(str::trim).collect();
            let code = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            Some((code.to_owned(), cells.get(2)?.to_string()))
        })
        .collect()
}

#[test]
fn every_example_decodes_and_every_kind_has_one() {
    let doc = doc();
    let examples = examples(&doc);
    let mut kinds = BTreeSet::new();
    for (topic, json) in &examples {
        let decoded = decode(topic, json.as_bytes(), &Limits::default())
            .unwrap_or_else(|e| panic!("example for {topic} is rejected: {e}\n{json}"));
        kinds.insert(match decoded.message {
            Message::Heartbeat(_) => "heartbeat".to_owned(),
            Message::Event(e) => format!("event/{}", e.body.kind()),
            Message::State(s) => match s.body {
                State::Online(_) => "state/online".to_owned(),
                State::Offline(_) => "state/offline".to_owned(),
            },
            Message::Command(c) => match c.body {
                CommandBody::Offer(_) => "cmd/offer".to_owned(),
                CommandBody::Config(_) => "cmd/config".to_owned(),
                CommandBody::Diagnostic(_) => "cmd/diagnostic".to_owned(),
                CommandBody::Withdraw(_) => "cmd/withdraw".to_owned(),
            },
            Message::Ack(_) => "ack".to_owned(),
        });
    }
    let expected: BTreeSet<String> = [
        "heartbeat",
        "event/reboot",
        "event/crash",
        "event/battery_drop",
        "event/over_temperature",
        "event/storage_error",
        "state/online",
        "state/offline",
        "cmd/offer",
        "cmd/config",
        "cmd/diagnostic",
        "cmd/withdraw",
        "ack",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(kinds, expected, "the document must show every message kind");
}

#[test]
fn reboot_reason_table_matches_the_code() {
    let rows = table(&doc(), "<!-- reboot-reasons -->");
    let standard: Vec<(RebootReason, &str)> = RebootReason::standard().collect();
    assert_eq!(
        rows.len(),
        standard.len() + 2,
        "standard reasons plus two vendor rows"
    );
    for (reason, code) in standard {
        let (_, class) = rows
            .iter()
            .find(|(c, _)| c == code)
            .unwrap_or_else(|| panic!("{code} is not in the document's table"));
        let want = match reason.class() {
            RebootClass::Expected => "expected",
            RebootClass::Unexpected => "unexpected",
        };
        assert_eq!(class, want, "class of {code}");
    }
    for (code, class) in &rows {
        if let Some(prefix) = code.strip_suffix("CODE") {
            let r: RebootReason = format!("{prefix}x").parse().expect("vendor row parses");
            assert_eq!(r.is_unexpected(), class == "unexpected", "{code}");
        }
    }
}

#[test]
fn rejection_table_lists_every_reason_code() {
    let documented: BTreeSet<String> = table(&doc(), "<!-- rejection-reasons -->")
        .into_iter()
        .map(|(code, _)| code)
        .collect();
    let code: BTreeSet<String> = DecodeError::REASONS.iter().map(|s| s.to_string()).collect();
    assert_eq!(documented, code);
}

#[test]
fn the_examples_are_the_reference_implementation_s() {
    // So the page cannot fall behind the schema: every example is exactly what the
    // crate's `examples` (also printed by `fleet-protocol examples`) build.
    let doc = doc();
    let shown: Vec<Message> = examples(&doc)
        .iter()
        .map(|(topic, json)| {
            decode(topic, json.as_bytes(), &Limits::default())
                .unwrap()
                .message
        })
        .collect();
    let code: Vec<Message> = protocol::examples::all()
        .into_iter()
        .map(|(_, m)| m)
        .collect();
    assert_eq!(shown, code);
}
