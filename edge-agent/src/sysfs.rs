//! The Linux backend: a real battery from `/sys/class/power_supply`, temperature from
//! `/sys/class/thermal`, panics from pstore and activity from the load average.
//!
//! Every path hangs off a root directory (normally `/`), so tests point the backend at
//! a fake tree. Values follow the kernel's power-supply ABI: `capacity` in percent,
//! `voltage_now` in µV, `temp` in tenths of °C, `charge_*` in µAh, `energy_*` in µWh.

use std::fs;
use std::path::{Path, PathBuf};

use crate::hal::{BatteryMonitor, BatterySample, HalError, Platform, ResetCause};

/// A battery read from one `/sys/class/power_supply/<name>` directory.
#[derive(Debug, Clone)]
pub struct SysfsBattery {
    dir: PathBuf,
}

impl SysfsBattery {
    /// The battery at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SysfsBattery { dir: dir.into() }
    }

    /// The first power supply under `root` whose `type` is `Battery`, if any.
    pub fn discover(root: &Path) -> Option<Self> {
        let class = root.join("sys/class/power_supply");
        let mut dirs: Vec<_> = fs::read_dir(class)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .collect();
        dirs.sort();
        dirs.into_iter()
            .find(|d| read_trimmed(&d.join("type")).is_ok_and(|t| t == "Battery"))
            .map(SysfsBattery::new)
    }

    /// The directory read.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn number(&self, name: &str) -> Result<Option<f64>, HalError> {
        let path = self.dir.join(name);
        match read_trimmed(&path) {
            Err(_) if !path.exists() => Ok(None),
            Err(e) => Err(e),
            Ok(text) => text
                .parse::<f64>()
                .map(Some)
                .map_err(|_| HalError::Implausible {
                    source_name: "sysfs battery",
                    detail: format!("{}: not a number: {text:?}", path.display()),
                }),
        }
    }
}

impl BatteryMonitor for SysfsBattery {
    fn read(&mut self) -> Result<BatterySample, HalError> {
        let capacity = self.number("capacity")?.ok_or_else(|| HalError::Io {
            path: self.dir.join("capacity").display().to_string(),
            message: "missing: the battery reports no capacity".into(),
        })?;
        if !(0.0..=100.0).contains(&capacity) {
            return Err(HalError::Implausible {
                source_name: "sysfs battery capacity",
                detail: format!("{capacity} %"),
            });
        }
        let voltage_v = self.number("voltage_now")?.map_or(0.0, |uv| uv / 1e6);
        let status = read_trimmed(&self.dir.join("status")).unwrap_or_default();
        // "Full" and "Not charging" still mean on a charger: the time counts as charging.
        let charging = matches!(status.as_str(), "Charging" | "Full" | "Not charging");
        let temp_c = self.number("temp")?.map(|t| (t / 10.0) as f32);
        let soh = match (
            self.number("charge_full")?,
            self.number("charge_full_design")?,
        ) {
            (Some(full), Some(design)) if design > 0.0 => Some(full / design * 100.0),
            _ => match (
                self.number("energy_full")?,
                self.number("energy_full_design")?,
            ) {
                (Some(full), Some(design)) if design > 0.0 => Some(full / design * 100.0),
                _ => None,
            },
        };
        // Many drivers report 0 cycles when they do not count them.
        let cycles = self.number("cycle_count")?.filter(|c| *c > 0.0);
        Ok(BatterySample {
            soc_pct: capacity as f32,
            voltage_v: voltage_v as f32,
            charging,
            temp_c,
            soh_pct: soh.map(|s| s as f32),
            cycles: cycles.map(|c| c as f32),
        })
    }
}

/// A Linux device as a [`Platform`].
#[derive(Debug, Clone)]
pub struct LinuxPlatform {
    root: PathBuf,
    battery: Option<SysfsBattery>,
    state_dir: PathBuf,
    /// Load average at or above which the device counts as in active use.
    pub active_load: f64,
}

/// The file in the state directory listing pstore records already reported.
const PSTORE_SEEN: &str = "pstore-seen";

impl LinuxPlatform {
    /// The device under `root` (normally `/`), keeping its own files in `state_dir`.
    pub fn new(root: impl Into<PathBuf>, state_dir: impl Into<PathBuf>) -> Self {
        let root = root.into();
        LinuxPlatform {
            battery: SysfsBattery::discover(&root),
            root,
            state_dir: state_dir.into(),
            active_load: 0.5,
        }
    }

    /// The battery found, if any.
    pub fn battery_source(&self) -> Option<&SysfsBattery> {
        self.battery.as_ref()
    }

    fn thermal_zones(&self) -> Vec<PathBuf> {
        let dir = self.root.join("sys/class/thermal");
        let mut zones: Vec<_> = fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        zones.retain(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("thermal_zone"))
        });
        zones.sort();
        zones
    }
}

impl Platform for LinuxPlatform {
    fn battery(&mut self) -> Result<Option<BatterySample>, HalError> {
        self.battery.as_mut().map(|b| b.read()).transpose()
    }

    /// The hottest thermal zone.
    fn temperature_c(&mut self) -> Result<Option<f32>, HalError> {
        let mut hottest: Option<f32> = None;
        for zone in self.thermal_zones() {
            let text = read_trimmed(&zone.join("temp"))?;
            let milli: f64 = text.parse().map_err(|_| HalError::Implausible {
                source_name: "thermal zone",
                detail: format!("{}: {text:?}", zone.display()),
            })?;
            let c = (milli / 1000.0) as f32;
            hottest = Some(hottest.map_or(c, |h| h.max(c)));
        }
        Ok(hottest)
    }

    /// Linux keeps no reset-cause register; a new pstore `dmesg-*` record means the last
    /// boot panicked. Otherwise the agent's own shutdown record decides.
    fn reset_cause(&mut self) -> Result<ResetCause, HalError> {
        let pstore = self.root.join("sys/fs/pstore");
        let mut records: Vec<String> = fs::read_dir(&pstore)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("dmesg-"))
                    .collect()
            })
            .unwrap_or_default();
        records.sort();
        let seen_path = self.state_dir.join(PSTORE_SEEN);
        let seen = fs::read_to_string(&seen_path).unwrap_or_default();
        let new = records.iter().any(|r| !seen.lines().any(|s| s == r));
        if new {
            write_file(&seen_path, records.join("\n").as_bytes())?;
            return Ok(ResetCause::KernelPanic);
        }
        Ok(ResetCause::Unknown)
    }

    fn is_active(&mut self) -> bool {
        read_trimmed(&self.root.join("proc/loadavg"))
            .ok()
            .and_then(|l| l.split_whitespace().next()?.parse::<f64>().ok())
            .is_some_and(|load| load >= self.active_load)
    }

    fn storage_self_test(&mut self) -> Result<(), HalError> {
        let path = self.state_dir.join("self-test");
        let pattern: Vec<u8> = (0..4096u32).map(|i| (i * 31 % 251) as u8).collect();
        write_file(&path, &pattern)?;
        let back = fs::read(&path).map_err(|e| io_error(&path, e))?;
        let _ = fs::remove_file(&path);
        if back != pattern {
            return Err(HalError::Implausible {
                source_name: "storage self-test",
                detail: "read back differs from what was written".into(),
            });
        }
        Ok(())
    }

    fn entropy(&mut self) -> u32 {
        fastrand::u32(..)
    }
}

fn read_trimmed(path: &Path) -> Result<String, HalError> {
    fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| io_error(path, e))
}

fn write_file(path: &Path, data: &[u8]) -> Result<(), HalError> {
    use std::io::Write;
    let mut f = fs::File::create(path).map_err(|e| io_error(path, e))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(|e| io_error(path, e))
}

fn io_error(path: &Path, e: std::io::Error) -> HalError {
    HalError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake root with one laptop-style battery, an AC adapter and two thermal zones.
    fn fake_root() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let put = |rel: &str, text: &str| {
            let p = root.path().join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, format!("{text}\n")).unwrap();
        };
        put("sys/class/power_supply/AC/type", "Mains");
        put("sys/class/power_supply/AC/online", "1");
        let bat = "sys/class/power_supply/BAT0";
        put(&format!("{bat}/type"), "Battery");
        put(&format!("{bat}/capacity"), "87");
        put(&format!("{bat}/voltage_now"), "12345000");
        put(&format!("{bat}/status"), "Discharging");
        put(&format!("{bat}/temp"), "312");
        put(&format!("{bat}/cycle_count"), "412");
        put(&format!("{bat}/charge_full"), "4200000");
        put(&format!("{bat}/charge_full_design"), "5000000");
        put("sys/class/thermal/thermal_zone0/temp", "41500");
        put("sys/class/thermal/thermal_zone1/temp", "55250");
        put("proc/loadavg", "0.80 0.50 0.40 2/300 12345");
        fs::create_dir_all(root.path().join("state")).unwrap();
        root
    }

    fn platform(root: &tempfile::TempDir) -> LinuxPlatform {
        LinuxPlatform::new(root.path(), root.path().join("state"))
    }

    #[test]
    fn finds_the_battery_among_power_supplies_and_reads_it_in_units() {
        let root = fake_root();
        let mut p = platform(&root);
        assert!(p.battery_source().unwrap().dir().ends_with("BAT0"));
        let s = p.battery().unwrap().unwrap();
        assert_eq!(s.soc_pct, 87.0);
        assert!((s.voltage_v - 12.345).abs() < 1e-5);
        assert!(!s.charging);
        assert_eq!(s.temp_c, Some(31.2));
        assert_eq!(s.soh_pct, Some(84.0));
        assert_eq!(s.cycles, Some(412.0));
    }

    #[test]
    fn energy_files_give_health_when_charge_files_are_absent() {
        let root = fake_root();
        let bat = root.path().join("sys/class/power_supply/BAT0");
        fs::remove_file(bat.join("charge_full")).unwrap();
        fs::write(bat.join("energy_full"), "45000000\n").unwrap();
        fs::write(bat.join("energy_full_design"), "50000000\n").unwrap();
        fs::write(bat.join("cycle_count"), "0\n").unwrap();
        fs::write(bat.join("status"), "Full\n").unwrap();
        let s = platform(&root).battery().unwrap().unwrap();
        assert_eq!(s.soh_pct, Some(90.0));
        assert_eq!(s.cycles, None, "0 means the driver does not count");
        assert!(s.charging, "a full battery is on its charger");
    }

    #[test]
    fn garbage_and_missing_capacity_are_errors() {
        let root = fake_root();
        let bat = root.path().join("sys/class/power_supply/BAT0");
        fs::write(bat.join("voltage_now"), "lots\n").unwrap();
        assert!(matches!(
            platform(&root).battery(),
            Err(HalError::Implausible { .. })
        ));
        fs::remove_file(bat.join("capacity")).unwrap();
        let err = platform(&root).battery().unwrap_err();
        assert!(err.to_string().contains("capacity"), "{err}");
    }

    #[test]
    fn a_device_without_battery_reports_none() {
        let root = fake_root();
        fs::remove_dir_all(root.path().join("sys/class/power_supply/BAT0")).unwrap();
        assert_eq!(platform(&root).battery(), Ok(None));
    }

    #[test]
    fn temperature_is_the_hottest_zone_and_load_decides_activity() {
        let root = fake_root();
        let mut p = platform(&root);
        assert_eq!(p.temperature_c().unwrap(), Some(55.25));
        assert!(p.is_active());
        fs::write(root.path().join("proc/loadavg"), "0.10 0.1 0.1 1/2 3\n").unwrap();
        assert!(!p.is_active());
    }

    #[test]
    fn a_new_pstore_record_reads_as_a_kernel_panic_once() {
        let root = fake_root();
        let mut p = platform(&root);
        assert_eq!(p.reset_cause().unwrap(), ResetCause::Unknown);
        let pstore = root.path().join("sys/fs/pstore");
        fs::create_dir_all(&pstore).unwrap();
        fs::write(pstore.join("dmesg-ramoops-0"), "Kernel panic").unwrap();
        assert_eq!(p.reset_cause().unwrap(), ResetCause::KernelPanic);
        assert_eq!(
            p.reset_cause().unwrap(),
            ResetCause::Unknown,
            "seen already"
        );
    }

    #[test]
    fn storage_self_test_writes_and_reads_back() {
        let root = fake_root();
        platform(&root).storage_self_test().unwrap();
        let mut broken = LinuxPlatform::new(root.path(), root.path().join("no-such-dir"));
        assert!(matches!(
            broken.storage_self_test(),
            Err(HalError::Io { .. })
        ));
    }
}
