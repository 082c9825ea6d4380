//! The binary refuses bad configuration with a message that names the problem, and
//! every subcommand answers `--help`.

use std::process::Command;

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cloud-ingest"))
        .args(args)
        .env_remove("FLEET_CONFIG")
        .output()
        .expect("running cloud-ingest");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn bad_configuration_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo.toml");
    std::fs::write(&typo, "[mqtt]\nurll = \"mqtt://x:1\"\n").unwrap();
    let (ok, text) = run(&[
        "serve",
        "--config",
        typo.to_str().unwrap(),
        "--print-config",
    ]);
    assert!(!ok && text.contains("urll"), "{text}");

    let (ok, text) = run(&["serve", "--mqtt-url", "tcp://x", "--print-config"]);
    assert!(!ok && text.contains("mqtt://"), "{text}");

    let (ok, text) = run(&["serve", "--influx-url", "http://x:8086", "--print-config"]);
    assert!(!ok && text.contains("--influx-org"), "{text}");

    let (ok, text) = run(&["serve", "--config", "/nonexistent/ingest.toml"]);
    assert!(!ok && text.contains("/nonexistent/ingest.toml"), "{text}");

    // Flags override the file; the effective configuration prints.
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[mqtt]\nurl = \"mqtt://a:1\"\n[policy]\ncooldown_days = 3\n",
    )
    .unwrap();
    let (ok, text) = run(&[
        "serve",
        "--config",
        good.to_str().unwrap(),
        "--mqtt-url",
        "mqtt://b:2",
        "--print-config",
    ]);
    assert!(ok, "{text}");
    assert!(
        text.contains("url = \"mqtt://b:2\"") && text.contains("cooldown_days = 3"),
        "{text}"
    );
}

#[test]
fn every_subcommand_answers_help() {
    for sub in [
        &["--help"][..],
        &["demo", "--help"],
        &["serve", "--help"],
        &["tickets", "--help"],
        &["export-labels", "--help"],
        &["users", "--help"],
        &["devices", "--help"],
        &["models", "--help"],
        &["models", "register", "--help"],
    ] {
        let (ok, text) = run(sub);
        assert!(ok && text.contains("Usage:"), "{sub:?}: {text}");
    }
    let (_, text) = run(&["serve", "--help"]);
    assert!(text.contains("FLEET_STORE_URL"), "{text}");
}

#[test]
fn with_no_configuration_serve_embeds_its_broker_and_serves_the_desk_on_8080() {
    let (ok, text) = run(&["serve", "--print-config"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("url = \"mqtt://127.0.0.1:1883\"")
            && text.contains("listen = \"127.0.0.1:8080\"")
            && text.contains("url = \"sqlite://data/fleet.db\""),
        "{text}"
    );
    // Naming a broker turns the embedded one off unless asked for.
    let (ok, text) = run(&[
        "serve",
        "--embedded-broker",
        "true",
        "--mqtt-url",
        "mqtts://127.0.0.1:8883",
        "--print-config",
    ]);
    assert!(!ok && text.contains("mqtts"), "{text}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Ends the child when the test does, passing or not.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `serve` on the embedded defaults (its ports moved so that the test does not take
/// 1883 and 8080): it creates the first admin, its broker takes a device's message
/// into `./data`, and the desk answers on its listener.
#[tokio::test]
async fn serve_on_embedded_defaults_takes_in_telemetry_and_serves_the_desk() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let (mqtt, http) = (free_port(), free_port());
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_cloud-ingest"))
            .current_dir(dir.path())
            .args(["serve", "--embedded-broker", "true"])
            .args(["--mqtt-url", &format!("mqtt://127.0.0.1:{mqtt}")])
            .args(["--http", &format!("127.0.0.1:{http}")])
            .env_remove("FLEET_CONFIG")
            .env_remove("FLEET_STORE_URL")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let mut token = None;
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(t) = line.trim().strip_prefix("fleet_") {
            token = Some(format!("fleet_{t}"));
        }
        let desk = line.contains(&format!("http://127.0.0.1:{http}/desk"));
        seen.push(line);
        if desk {
            break;
        }
    }
    let token = token.unwrap_or_else(|| panic!("no admin token printed: {seen:#?}"));
    // Keep draining the log so that the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});

    let web = reqwest::Client::new();
    let me: serde_json::Value = web
        .get(format!("http://127.0.0.1:{http}/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "admin", "{me}");

    let broker = tests::services::Mqtt {
        host: "127.0.0.1".into(),
        port: mqtt,
    };
    let mut probe = tests::mqtt::Probe::connect(&broker, "cli-device").await;
    let birth = {
        use protocol::{examples, Limits, Message};
        let mut e = examples::birth();
        e.ts_ms = protocol::Timestamp::from_system_time(std::time::SystemTime::now());
        Message::State(e).encode(&Limits::default()).unwrap()
    };
    let topic = protocol::Topic::new(
        protocol::TenantId::new("acme").unwrap(),
        examples_device(),
        protocol::Channel::State,
    )
    .to_string();
    probe.publish(&topic, birth, false).await;
    let store = format!("sqlite://{}/data/fleet.db", dir.path().display());
    let mut listed = String::new();
    for _ in 0..100 {
        let (ok, text) = run(&["devices", "--store", &store]);
        assert!(ok, "{text}");
        if text.contains(examples_device().as_str()) {
            listed = text;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        listed.contains("\"online\":true"),
        "the device's birth never reached ./data/fleet.db: {listed:?}"
    );
}

fn examples_device() -> protocol::DeviceId {
    protocol::examples::birth().device_id
}

#[test]
fn export_labels_writes_the_set_and_refuses_a_bad_store_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("fleet.db").display());
    let out = dir.path().join("labels");
    let (ok, text) = run(&[
        "export-labels",
        "--store",
        &store,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    assert!(
        text.contains("wrote 0 rows") && text.contains("models train --csv"),
        "{text}"
    );
    let csv = std::fs::read_to_string(out.join("labels.csv")).unwrap();
    assert!(csv.starts_with("device_id,ts,label,mode,"), "{csv}");

    let (ok, text) = run(&["export-labels", "--store", "mysql://x", "--out", "x"]);
    assert!(!ok && text.contains("mysql://x"), "{text}");
    let (ok, text) = run(&["export-labels", "--store", &store]);
    assert!(!ok && text.contains("--out"), "{text}");
    let trades = std::fs::read_to_string(out.join("tradeins.csv")).unwrap();
    assert!(
        trades
            .trim_end()
            .ends_with("functional_grade,cosmetic_grade,route"),
        "{trades}"
    );
    for bad in ["0", "101", "eighty"] {
        let (ok, text) = run(&[
            "export-labels",
            "--store",
            &store,
            "--out",
            out.to_str().unwrap(),
            "--battery-floor-pct",
            bad,
        ]);
        assert!(!ok && text.contains("--battery-floor-pct"), "{bad}: {text}");
    }
}

#[test]
fn models_register_adds_a_version_and_a_challenger_and_refuses_a_bad_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("fleet.db").display());
    let mut a = models::artifact::ModelArtifact::bundled().unwrap();
    a.version = "cli-variant".into();
    let file = dir.path().join("variant.json");
    std::fs::write(&file, serde_json::to_vec(&a).unwrap()).unwrap();

    let (ok, text) = run(&[
        "models",
        "register",
        file.to_str().unwrap(),
        "--challenger",
        "--store",
        &store,
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("registered cli-variant"), "{text}");
    assert!(text.contains("cli-variant is the challenger"), "{text}");

    let (ok, text) = run(&["models", "list", "--store", &store]);
    assert!(ok, "{text}");
    let listed: serde_json::Value = serde_json::from_str(&text).expect("list prints JSON");
    let aliases = listed["aliases"].to_string();
    assert!(aliases.contains("cli-variant"), "{listed}");
    let bundled = models::artifact::ModelArtifact::bundled().unwrap().version;
    assert!(
        aliases.contains(&bundled),
        "the bundled model is champion: {listed}"
    );

    // Registering the same bytes again is no new version.
    let (ok, text) = run(&[
        "models",
        "register",
        file.to_str().unwrap(),
        "--store",
        &store,
    ]);
    assert!(ok && text.contains("already registered"), "{text}");

    // A file that is no artifact is refused by name and changes nothing.
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, b"{\"version\": 3}").unwrap();
    let (ok, text) = run(&[
        "models",
        "register",
        junk.to_str().unwrap(),
        "--store",
        &store,
    ]);
    assert!(!ok && text.contains("junk.json"), "{text}");
    let (_, after) = run(&["models", "list", "--store", &store]);
    let after: serde_json::Value = serde_json::from_str(&after).unwrap();
    assert_eq!(
        after["versions"].as_array().unwrap().len(),
        listed["versions"].as_array().unwrap().len(),
        "{after}"
    );
    let (ok, text) = run(&[
        "models",
        "register",
        "/nonexistent/m.json",
        "--store",
        &store,
    ]);
    assert!(!ok && text.contains("/nonexistent/m.json"), "{text}");
}
