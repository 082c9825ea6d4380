//! Faults to inject with real processes: a private Mosquitto with persistence that a
//! test restarts, a TCP proxy whose link a test cuts and restores, and a publisher that
//! retries each message until the broker acknowledges it, so a test knows exactly which
//! messages were accepted.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::services::Mqtt;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A Mosquitto of the test's own, persisting its sessions to disk.
pub struct Broker {
    child: Option<Child>,
    conf: PathBuf,
    /// Where it listens.
    pub mqtt: Mqtt,
}

impl Broker {
    /// Starts one with persistence in `dir`; panics naming the cause if it cannot.
    pub fn start(dir: &Path) -> Broker {
        use std::os::unix::fs::PermissionsExt;
        let port = free_port();
        // Started as root, Mosquitto drops to its own user, which must write here.
        let dir = &dir.join("mosquitto");
        std::fs::create_dir_all(dir).unwrap();
        for d in [dir.as_path(), dir.parent().unwrap()] {
            let mode = if d == dir.as_path() { 0o777 } else { 0o755 };
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
                 persistence_location {}/\nautosave_interval 1\nmax_queued_messages 100000\n\
                 message_size_limit 131072\nlog_dest stderr\nlog_type error\n",
                dir.display()
            ),
        )
        .unwrap();
        let mut b = Broker {
            child: None,
            conf,
            mqtt: Mqtt {
                host: "127.0.0.1".into(),
                port,
            },
        };
        b.spawn();
        b
    }

    /// Starts it again after [`Broker::stop`], on the same port, with what it saved.
    pub fn resume(&mut self) {
        self.spawn();
    }

    fn spawn(&mut self) {
        let bin = ["/usr/sbin/mosquitto", "mosquitto"]
            .into_iter()
            .find(|b| Path::new(b).exists() || which(b))
            .expect("mosquitto is not installed: scripts/test.sh installs it");
        let child = Command::new(bin)
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting mosquitto");
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.mqtt.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("mosquitto did not listen on {} within 5 s", self.mqtt.port);
    }

    /// Stops it as an operator would (SIGTERM: it saves its sessions) and waits.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port, with what it saved.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn which(bin: &str) -> bool {
    Command::new(bin)
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A TCP proxy in front of a broker whose link the test cuts: while cut, open
/// connections are dropped and new ones refused.
pub struct Proxy {
    /// Where clients connect.
    pub mqtt: Mqtt,
    up: watch::Sender<bool>,
}

impl Proxy {
    /// A proxy to `target`, up.
    pub async fn start(target: &Mqtt) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (up, up_rx) = watch::channel(true);
        let to = format!("{}:{}", target.host, target.port);
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let mut up = up_rx.clone();
                if !*up.borrow() {
                    continue; // refused: dropped at once
                }
                let to = to.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&to).await else {
                        return;
                    };
                    tokio::select! {
                        _ = copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = up.wait_for(|u| !*u) => {}
                    }
                });
            }
        });
        Proxy {
            mqtt: Mqtt {
                host: "127.0.0.1".into(),
                port,
            },
            up,
        }
    }

    /// Cuts the link: every connection through it drops, new ones are refused.
    pub fn cut(&self) {
        let _ = self.up.send(false);
    }

    /// Restores the link.
    pub fn restore(&self) {
        let _ = self.up.send(true);
    }
}

/// What the publisher's connection reports.
enum Seen {
    Sent(u16),
    Acked(u16),
}

/// Publishes one message at a time with QoS 1, retrying until the broker acknowledges
/// it: when [`AckedPublisher::publish`] returns, the broker has the message.
pub struct AckedPublisher {
    client: AsyncClient,
    seen: mpsc::UnboundedReceiver<Seen>,
    stop: Arc<AtomicBool>,
}

impl AckedPublisher {
    /// Connects (and keeps reconnecting) to `broker` as `client_id`.
    pub fn connect(broker: &Mqtt, client_id: &str) -> AckedPublisher {
        let mut opts = MqttOptions::new(client_id, broker.host.clone(), broker.port);
        opts.set_keep_alive(Duration::from_secs(5));
        // A clean session: nothing is resent behind the test's back; it retries itself.
        opts.set_clean_session(true);
        let (client, mut el) = AsyncClient::new(opts, 16);
        let (tx, seen) = mpsc::unbounded_channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        tokio::spawn(async move {
            while !stopping.load(Ordering::Relaxed) {
                match el.poll().await {
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                        let _ = tx.send(Seen::Sent(pkid));
                    }
                    Ok(Event::Incoming(Packet::PubAck(a))) => {
                        let _ = tx.send(Seen::Acked(a.pkid));
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        AckedPublisher { client, seen, stop }
    }

    /// Publishes until acknowledged (a try that gets no PUBACK within a second is sent
    /// again: the same message, which ingest deduplicates by its seq).
    pub async fn publish(&mut self, topic: &str, payload: &[u8]) {
        while self.seen.try_recv().is_ok() {}
        let mut mine: Vec<u16> = Vec::new();
        loop {
            if self
                .client
                .try_publish(topic, QoS::AtLeastOnce, false, payload.to_vec())
                .is_err()
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
            while let Ok(Some(s)) = tokio::time::timeout_at(deadline, self.seen.recv()).await {
                match s {
                    Seen::Sent(pkid) => mine.push(pkid),
                    Seen::Acked(pkid) if mine.contains(&pkid) => return,
                    Seen::Acked(_) => {}
                }
            }
        }
    }
}

impl Drop for AckedPublisher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A PostgreSQL server of the test's own (trust authentication on loopback), which the
/// test stops and starts again.
pub struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    /// Its URL, for the `postgres` database.
    pub url: String,
}

fn as_postgres(cmd: &Path) -> Command {
    // initdb and the server refuse to run as root: as root, run them as `postgres`.
    if running_as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(cmd);
        c
    } else {
        Command::new(cmd)
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Postgres {
    /// Creates and starts one with its data in `dir`; panics naming the cause.
    pub fn start(dir: &Path) -> Postgres {
        use std::os::unix::fs::PermissionsExt;
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is not installed: scripts/test.sh installs it")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|b| b.join("initdb").exists())
            .max()
            .expect("no PostgreSQL server binaries under /usr/lib/postgresql");
        let data = dir.join("pg");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        if running_as_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(&data)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown postgres {} failed", data.display());
        }
        let out = as_postgres(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "fleet", "--auth=trust", "-E", "UTF8", "--locale=C"])
            .output()
            .expect("running initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let pg = Postgres {
            bin,
            url: format!("postgres://fleet@127.0.0.1:{port}/postgres"),
            data,
            port,
        };
        pg.pg_ctl("start");
        pg
    }

    fn pg_ctl(&self, action: &str) {
        let mut c = as_postgres(&self.bin.join("pg_ctl"));
        c.arg("-D")
            .arg(&self.data)
            .args(["-w", "-t", "60", "-m", "fast"]);
        if action == "start" {
            c.arg("-o").arg(format!(
                "-p {} -c listen_addresses=127.0.0.1 -k {}",
                self.port,
                self.data.display()
            ));
            c.arg("-l").arg(self.data.join("server.log"));
        }
        let out = c.arg(action).output().expect("running pg_ctl");
        assert!(
            out.status.success(),
            "pg_ctl {action} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops the server (fast shutdown: connections are closed).
    pub fn stop(&self) {
        self.pg_ctl("stop");
    }

    /// Starts it again on the same port.
    pub fn resume(&self) {
        self.pg_ctl("start");
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}
