//! Test support: throwaway `redis-server` processes (TLS ones too) and a three-master Redis
//! Cluster.
//!
//! Integration tests include it with `mod support;`. Every server runs on a free loopback
//! port (never 6379) with persistence off (`--save "" --appendonly no`) in its own temporary
//! directory, and is killed when its handle is dropped, a panic included.
//!
//! A small `sh` watchdog runs beside each `redis-server` and kills it with `SIGKILL` once the
//! test process is gone, so no server outlives the tests even when its handle is kept in a
//! `static` (statics are never dropped).
//!
//! Needs `redis-server` and `redis-cli` (Redis 7) on `PATH`. Linux/Unix only.
#![allow(dead_code, unreachable_pub)]

pub mod tls;

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// How long a server gets to answer `PING` after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a cluster gets until every node reports `cluster_state:ok`.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(20);
/// The pause between two polls of a wait loop.
const POLL: Duration = Duration::from_millis(20);
/// How many times `start()` tries, each time on a new port, before it gives up.
const START_ATTEMPTS: usize = 5;
/// The cluster bus listens on the client port plus this.
const CLUSTER_BUS_OFFSET: u16 = 10_000;
/// Client ports of cluster nodes stay below this, so the bus port fits in a `u16`.
const MAX_CLUSTER_PORT: u16 = 55_535;
/// Redis's default port, which a test server never uses.
const DEFAULT_REDIS_PORT: u16 = 6379;

/// Ports (client and cluster bus) held by live servers of this process, so two servers
/// never get the same one, and a killed server keeps its port for `restart()`.
static RESERVED_PORTS: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
/// Makes the temporary directory names unique within this process.
static DIR_COUNTER: AtomicUsize = AtomicUsize::new(0);

fn reserved() -> MutexGuard<'static, Option<HashSet<u16>>> {
    // A test that panicked while holding the lock leaves the set itself consistent.
    RESERVED_PORTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether `port` can be bound on loopback right now.
fn bindable(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// Picks and reserves a free loopback port; for a cluster node, also its bus port
/// (`port + 10000`), and the port stays below 55535.
fn reserve_port(cluster: bool) -> u16 {
    for _ in 0..200 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .expect("cannot bind a loopback port for a test redis-server");
        let port = listener
            .local_addr()
            .expect("local address of a bound listener")
            .port();
        if port == DEFAULT_REDIS_PORT || (cluster && port >= MAX_CLUSTER_PORT) {
            continue;
        }
        let bus = port.checked_add(CLUSTER_BUS_OFFSET);
        let mut guard = reserved();
        let set = guard.get_or_insert_with(HashSet::new);
        // Never hand out a port that is, or whose bus port would be, another server's.
        if set.contains(&port) || bus.is_some_and(|bus| set.contains(&bus)) {
            continue;
        }
        if cluster {
            let bus = bus.expect("port below 55535 has a bus port");
            if !bindable(bus) {
                continue;
            }
            set.insert(bus);
        }
        set.insert(port);
        return port;
    }
    panic!("found no free loopback port for a test redis-server after 200 tries");
}

fn release_port(port: u16, cluster: bool) {
    if let Some(set) = reserved().as_mut() {
        set.remove(&port);
        if cluster {
            if let Some(bus) = port.checked_add(CLUSTER_BUS_OFFSET) {
                set.remove(&bus);
            }
        }
    }
}

/// Sends `PING` and reports whether `+PONG` came back within `timeout`.
fn answers_ping(port: u16, timeout: Duration) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    if stream.set_read_timeout(Some(timeout)).is_err()
        || stream.set_write_timeout(Some(timeout)).is_err()
        || stream.write_all(b"PING\r\n").is_err()
    {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

/// The `process_id` in the `INFO server` reply of whatever answers on `port`.
fn answering_pid(port: u16, timeout: Duration) -> Option<u32> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    stream.write_all(b"INFO server\r\n").ok()?;
    let deadline = Instant::now() + timeout;
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    while Instant::now() < deadline {
        let read = stream.read(&mut chunk).ok()?;
        if read == 0 {
            break;
        }
        reply.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&reply);
        if let Some(pid) = text
            .lines()
            .find_map(|line| line.strip_prefix("process_id:"))
            .filter(|_| text.contains("run_id:"))
        {
            return pid.trim().parse().ok();
        }
    }
    None
}

/// Sends `kill -<signal> <pid>`; panics if `kill` fails.
fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("cannot run `kill`");
    assert!(status.success(), "`kill -{signal} {pid}` failed: {status}");
}

/// Kills a child process (if it still runs) and reaps it.
fn kill_and_reap(child: &mut Child) {
    // `kill` errors only when the child was already reaped, which `wait` then reports.
    let _ = child.kill();
    let _ = child.wait();
}

/// Why a start attempt failed.
enum StartError {
    /// The port (or the cluster bus port) was taken by someone else: try other ports.
    PortClash(String),
    /// Anything else; `start()` still tries another port, `restart()` gives up.
    Other(String),
}

/// A `redis-server` owned by the test: started on a free loopback port (never 6379), with
/// `--save "" --appendonly no`, killed on drop (panics included).
pub struct RedisServer {
    port: u16,
    cluster: bool,
    /// The TLS port, beside the plain one, and the files the server presents there.
    tls: Option<(u16, TlsFiles)>,
    dir: PathBuf,
    /// The `redis-server` process itself, a direct child of the test process.
    server: Option<Child>,
    /// The `sh` loop that kills the server once the test process is gone.
    watchdog: Option<Child>,
}

/// The files a TLS server presents: its certificate and key, and the CA it names.
#[derive(Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

impl RedisServer {
    /// Starts a standalone server and waits until it answers `PING`.
    ///
    /// Panics, with the server's log, if it does not answer within about 10 s.
    pub fn start() -> RedisServer {
        Self::start_with(false, None)
    }

    /// Starts a standalone server that also listens for TLS on a port of its own
    /// ([`RedisServer::tls_url`]), presenting `files` (clients need no certificate), and waits
    /// until it answers `PING` on its plain port, which `cli` keeps using.
    pub fn start_tls(files: &TlsFiles) -> RedisServer {
        Self::start_with(false, Some(files))
    }

    /// Starts a cluster-enabled node (bus port = port + 10000) and waits until it answers
    /// `PING`; its slots are not assigned.
    fn start_cluster_node() -> RedisServer {
        Self::start_with(true, None)
    }

    fn start_with(cluster: bool, tls: Option<&TlsFiles>) -> RedisServer {
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = reserve_port(cluster);
            let mut server = RedisServer {
                port,
                cluster,
                tls: tls.map(|files| (reserve_port(false), files.clone())),
                dir: new_temp_dir(port),
                server: None,
                watchdog: None,
            };
            // Any failure may be a lost race for the port, which was closed before
            // `redis-server` bound it (and the log does not always say so): try another port.
            // Dropping `server` releases the port and removes its directory.
            match server.launch() {
                Ok(()) => return server,
                Err(StartError::PortClash(log)) => last_error = log,
                Err(StartError::Other(message)) => last_error = message,
            }
        }
        panic!("redis-server did not start in {START_ATTEMPTS} attempts, each on a new port; last failure:\n{last_error}");
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `rediss://127.0.0.1:TLS_PORT`, for a server started with [`RedisServer::start_tls`].
    pub fn tls_url(&self) -> String {
        let (port, _) = self.tls.as_ref().expect("a server started with start_tls");
        format!("rediss://127.0.0.1:{port}")
    }

    /// The server's working directory (`--dir`), which holds its log and `nodes.conf`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The pid of the `redis-server` process, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.server.as_ref().map(Child::id)
    }

    /// Kills the server with `SIGKILL` and waits until it is gone; its port stays reserved
    /// for [`RedisServer::restart`]. Does nothing if it is not running.
    pub fn kill(&mut self) {
        // The watchdog goes first: it must never outlive the server's pid.
        if let Some(mut watchdog) = self.watchdog.take() {
            kill_and_reap(&mut watchdog);
        }
        if let Some(mut server) = self.server.take() {
            // SIGKILL also ends a frozen (SIGSTOPped) server.
            kill_and_reap(&mut server);
        }
    }

    /// Starts the server again on the same port (after [`RedisServer::kill`]) and waits
    /// until it answers `PING`. Its data is gone (no persistence), but a cluster node keeps
    /// its `nodes.conf` and so its identity and slots.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.launch() {
                Ok(()) => return,
                // Someone else grabbed the port meanwhile: it may be freed again soon.
                Err(StartError::PortClash(_)) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(50));
                }
                Err(StartError::PortClash(log)) => panic!(
                    "redis-server could not restart on port {}, still in use; log:\n{log}",
                    self.port
                ),
                Err(StartError::Other(message)) => panic!("{message}"),
            }
        }
    }

    /// Suspends the server with `SIGSTOP`: connections stay open but nothing is answered.
    pub fn freeze(&self) {
        signal(self.running_pid("freeze"), "STOP");
    }

    /// Resumes a frozen server with `SIGCONT`.
    pub fn thaw(&self) {
        signal(self.running_pid("thaw"), "CONT");
    }

    /// Runs `redis-cli -h 127.0.0.1 -p PORT <args>` and returns its trimmed stdout.
    ///
    /// An error reply is not a failure of `redis-cli`: it comes back as text such as
    /// `ERR unknown command …`. Panics, with stderr, if `redis-cli` itself fails (for
    /// example when it cannot connect).
    pub fn cli(&self, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("cannot run redis-cli (is it installed?)");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "`redis-cli -p {} {}` failed ({}): stderr: {} stdout: {}",
            self.port,
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim(),
            stdout.trim(),
        );
        stdout.trim().to_owned()
    }

    /// Waits, up to two seconds, until `n` clients have a command held by a `CLIENT PAUSE`
    /// (the server's `blocked_clients`): a command sent by a task the test cannot see, such as
    /// a fill's `SET`, has reached the server. Only under a `CLIENT PAUSE … WRITE`: under
    /// `… ALL`, its own `INFO` would be held too.
    pub fn wait_for_held_commands(&self, n: usize) {
        let want = format!("blocked_clients:{n}");
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let info = self.cli(&["INFO", "clients"]);
            if info.lines().any(|line| line.trim() == want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the server never held {n} commands; INFO clients:\n{info}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The server's log so far (`<dir>/redis.log`, plus whatever it printed before the log
    /// file was open).
    pub fn log(&self) -> String {
        let read = |name: &str| fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        format!("{}{}", read("output.log"), read("redis.log"))
    }

    fn running_pid(&self, what: &str) -> u32 {
        self.pid().unwrap_or_else(|| {
            panic!(
                "cannot {what} redis-server on port {}: it is not running",
                self.port
            )
        })
    }

    /// Spawns redis-server and its watchdog and waits for `PING`.
    fn launch(&mut self) -> Result<(), StartError> {
        let port = self.port.to_string();
        let logfile = self.dir.join("redis.log");
        let mut command = Command::new("redis-server");
        command
            .args(["--bind", "127.0.0.1", "--port", &port])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&logfile);
        if let Some((tls_port, files)) = &self.tls {
            command
                .args(["--tls-port", &tls_port.to_string()])
                .arg("--tls-cert-file")
                .arg(&files.cert)
                .arg("--tls-key-file")
                .arg(&files.key)
                .arg("--tls-ca-cert-file")
                .arg(&files.ca)
                .args(["--tls-auth-clients", "no"]);
        }
        if self.cluster {
            command.args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
            ]);
        }
        // Startup errors printed before the log file is open land here.
        let output = File::create(self.dir.join("output.log"))
            .map_err(|e| StartError::Other(format!("cannot create {}: {e}", self.dir.display())))?;
        let output_err = output
            .try_clone()
            .map_err(|e| StartError::Other(format!("cannot clone a file handle: {e}")))?;
        let server = command
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(output_err)
            .spawn()
            .map_err(|e| {
                StartError::Other(format!("cannot run redis-server (is it installed?): {e}"))
            })?;
        let server_pid = server.id();
        self.server = Some(server);

        // Kills the server once the test process (or the server) is gone, polling twice a
        // second, and then removes the directory if the test process is gone (a server kept
        // in a `static` is never dropped). `kill -0` succeeds on a zombie, which is fine: a
        // zombie holds no port. Drop and kill() end the watchdog before the server.
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(
                "while kill -0 \"$1\" 2>/dev/null && kill -0 \"$2\" 2>/dev/null; do sleep 0.5; done; \
                 kill -9 \"$2\" 2>/dev/null; \
                 kill -0 \"$1\" 2>/dev/null || rm -rf \"$3\"",
            )
            .arg("redis-watchdog")
            .arg(std::process::id().to_string())
            .arg(server_pid.to_string())
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| StartError::Other(format!("cannot run sh for the watchdog: {e}")));
        match watchdog {
            Ok(watchdog) => self.watchdog = Some(watchdog),
            Err(error) => {
                self.kill();
                return Err(error);
            }
        }

        let server_pid_of_child = server_pid;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if answers_ping(self.port, Duration::from_millis(200)) {
                // The port was free when picked, then closed: another process's server may
                // have taken it meanwhile and be the one answering, while ours failed to bind.
                if answering_pid(self.port, Duration::from_secs(2)) == Some(server_pid_of_child) {
                    return Ok(());
                }
                self.kill();
                return Err(StartError::PortClash(format!(
                    "another server answers on port {}; log:\n{}",
                    self.port,
                    self.log()
                )));
            }
            let exited = match self.server.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => Some(status.to_string()),
                Some(Ok(None)) => None,
                Some(Err(e)) => Some(format!("unknown status ({e})")),
                None => Some("not running".to_owned()),
            };
            if let Some(status) = exited {
                self.kill();
                let log = self.log();
                return Err(if log.contains("already in use") {
                    StartError::PortClash(log)
                } else {
                    StartError::Other(format!(
                        "redis-server on port {} exited at startup ({status}); log:\n{log}",
                        self.port
                    ))
                });
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(StartError::Other(format!(
                    "redis-server on port {} did not answer PING within {START_TIMEOUT:?}; log:\n{}",
                    self.port,
                    self.log()
                )));
            }
            thread::sleep(POLL);
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = fs::remove_dir_all(&self.dir);
        release_port(self.port, self.cluster);
        if let Some((tls_port, _)) = &self.tls {
            release_port(*tls_port, false);
        }
    }
}

/// Creates a fresh, empty temporary directory named after this process, a counter and
/// `port`.
fn new_temp_dir(port: u16) -> PathBuf {
    let n = DIR_COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir =
        std::env::temp_dir().join(format!("cachette-redis-{}-{n}-{port}", std::process::id()));
    // A leftover from an earlier process with the same pid must not leak `nodes.conf`.
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// A Redis Cluster of 3 masters (no replicas) on loopback, each a cluster-enabled
/// [`RedisServer`], with all 16384 slots assigned and every node reporting
/// `cluster_state:ok`. Dropping it kills every node.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three nodes, assigns the slots with `redis-cli --cluster create`, and waits
    /// (about 20 s at most) until every node reports `cluster_state:ok`.
    pub fn start() -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3).map(|_| RedisServer::start_cluster_node()).collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect();
        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("cannot run redis-cli (is it installed?)");
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success() && report.contains("All 16384 slots covered"),
            "`redis-cli --cluster create {}` failed ({}):\n{report}",
            addresses.join(" "),
            output.status,
        );

        let cluster = RedisCluster { nodes };
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        loop {
            let infos: Vec<String> = cluster
                .nodes
                .iter()
                .map(|node| node.cli(&["CLUSTER", "INFO"]))
                .collect();
            if infos.iter().all(|info| info.contains("cluster_state:ok")) {
                return cluster;
            }
            assert!(
                Instant::now() < deadline,
                "cluster did not reach cluster_state:ok within {CLUSTER_TIMEOUT:?}:\n{}",
                infos.join("\n---\n")
            );
            thread::sleep(POLL);
        }
    }

    /// One `redis://127.0.0.1:PORT` URL per master.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The masters, in the order their slots were assigned (node 0 holds slots 0..=5460).
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Mutable access to the masters, to kill, restart, freeze or thaw one.
    pub fn nodes_mut(&mut self) -> &mut [RedisServer] {
        &mut self.nodes
    }

    /// `DBSIZE` of each master, in node order.
    pub fn keys_per_node(&self) -> Vec<usize> {
        self.nodes
            .iter()
            .map(|node| {
                let reply = node.cli(&["DBSIZE"]);
                reply
                    .parse()
                    .unwrap_or_else(|_| panic!("DBSIZE on port {} answered {reply:?}", node.port()))
            })
            .collect()
    }
}
