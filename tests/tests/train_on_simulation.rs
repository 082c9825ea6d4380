//! A simulated fleet, labelled and trained on, end to end through the libraries the
//! `firmware-sim generate` and `models train` commands use.

use firmware_sim::dataset;
use firmware_sim::fleet::{Fleet, DEFAULT_START};
use firmware_sim::offline::SimSettings;
use models::evaluation::Evaluation;
use models::labels::{self, LabelConfig};
use models::training::{self, Kind, TrainConfig};
use protocol::ids::TenantId;

const DAY_MS: u64 = 86_400_000;

#[test]
fn a_simulated_fleet_is_labelled_without_leaks_and_a_model_beats_the_hand_rule() {
    let dir = tempfile::tempdir().unwrap();
    let (devices, days) = (300, 90);
    let fleet = Fleet::generate(5, devices, days, DEFAULT_START);
    let tenant = TenantId::new("acme").unwrap();
    dataset::generate(
        &fleet,
        5,
        &SimSettings::default(),
        &tenant,
        dir.path(),
        2,
        &|_, _| {},
    )
    .unwrap();
    let truth = dataset::read_truth(dir.path()).unwrap();

    let config = LabelConfig::default();
    let set = labels::from_simulation(dir.path(), &config, &|_| {}).unwrap();
    assert_eq!(set.devices.len(), devices);
    let end = DEFAULT_START.0 + u64::from(days) * DAY_MS;
    for i in 0..set.len() {
        let d = &set.devices[set.device[i] as usize];
        let t = set.t_ms[i];
        let row = truth.iter().find(|r| r.device_id == d.id).unwrap();
        assert_eq!(d.failed_at_ms, row.failed_at_ms);
        match d.failed_at_ms {
            Some(f) => {
                assert!(t < f, "{}: a row at or after the failure", d.id);
                assert_eq!(set.y[i], f - t <= 14 * DAY_MS, "{} label at {t}", d.id);
            }
            None => {
                assert!(!set.y[i]);
                assert!(
                    t + 14 * DAY_MS <= end,
                    "{}: a healthy row whose label is not known yet",
                    d.id
                );
            }
        }
        assert!(
            t >= DEFAULT_START.0 + 7 * DAY_MS,
            "rows start after the minimum history"
        );
    }
    let failed = set.devices.iter().filter(|d| d.failed).count();
    assert!(failed >= 10, "{failed} failures: too few to train on");
    assert!(set.positives() > 0);

    let mut train_config = TrainConfig::new(Kind::Forest, 14, 1);
    train_config.forest.trees = 20;
    let model = training::train(&set, &train_config, &|_| {}).unwrap();
    assert_eq!(model.training.rows, set.len(), "refitted on every row");
    assert_eq!(model.training.failed_devices, failed);

    // Scored on a second fleet the model never saw.
    let other = tempfile::tempdir().unwrap();
    let fleet2 = Fleet::generate(6, 200, days, DEFAULT_START);
    dataset::generate(
        &fleet2,
        6,
        &SimSettings::default(),
        &tenant,
        other.path(),
        2,
        &|_, _| {},
    )
    .unwrap();
    let test = labels::from_simulation(other.path(), &config, &|_| {}).unwrap();
    let scores: Vec<f64> = (0..test.len())
        .map(|i| model.probability(&test.row(i)))
        .collect();
    let e = Evaluation::new(&test, &scores, model.threshold, &train_config.rule);
    assert!(e.model.roc_auc > 0.8, "ROC AUC {}", e.model.roc_auc);
    assert!(
        e.model.roc_auc > e.baseline.as_ref().unwrap().roc_auc,
        "{} vs the rule's {}",
        e.model.roc_auc,
        e.baseline.as_ref().unwrap().roc_auc
    );
    assert!(e.model.pr_auc > e.baseline.as_ref().unwrap().pr_auc);
}
