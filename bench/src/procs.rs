//! Child processes of a benchmark (the real release binaries) and what Linux's `/proc` tells
//! about them: CPU seconds and peak resident memory. Postgres is measured the same way from its
//! postmaster (which accumulates the CPU of its exited backends) and its live backends.

use std::{
    fs,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};

/// Where the release binaries are: next to this benchmark's own binary (`target/release`).
pub fn bin_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("target/release"))
}

/// Logs of the child processes (one file per process), kept for a look after a run.
pub fn log_dir() -> PathBuf {
    let dir = std::env::temp_dir().join("wharf-bench-logs");
    let _ = fs::create_dir_all(&dir);
    dir
}

/// A free loopback port (bound then released; the child binds it a moment later).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A running child process, killed when dropped.
pub struct Proc {
    pub name: String,
    pid: u32,
    /// Behind a lock so liveness can be checked through a shared reference.
    child: Mutex<Child>,
}

impl Proc {
    /// Starts `bin` (a file in [`bin_dir`]) with `env` on top of this process's environment.
    pub fn spawn(name: &str, bin: &str, env: &[(&str, String)]) -> anyhow::Result<Self> {
        let path = bin_dir().join(bin);
        if !path.exists() {
            bail!(
                "{} is missing: build it first (bench/run does: cargo build --release)",
                path.display()
            );
        }
        let log = fs::File::create(log_dir().join(format!("{name}.log")))?;
        let mut cmd = Command::new(&path);
        cmd.env("RUST_LOG", "warn")
            .env("LOG_FORMAT", "pretty")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("start {}", path.display()))?;
        Ok(Self {
            name: name.to_string(),
            pid: child.id(),
            child: Mutex::new(child),
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// User + system CPU seconds used so far.
    pub fn cpu_secs(&self) -> f64 {
        cpu_of(self.pid()).map(|c| c.own).unwrap_or(0.0)
    }

    /// Peak resident set (VmHWM) in MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        peak_rss_mib(self.pid()).unwrap_or(0.0)
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub fn stop(&mut self, grace: Duration) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        let until = Instant::now() + grace;
        while Instant::now() < until {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Fails if the process has exited (a crashed platform must not produce figures).
    pub fn ensure_running(&self) -> anyhow::Result<()> {
        let status = self
            .child
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .try_wait();
        if let Ok(Some(status)) = status {
            bail!(
                "{} exited ({status}); see {}",
                self.name,
                log_dir().join(format!("{}.log", self.name)).display()
            );
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn clock_ticks() -> f64 {
    // USER_HZ is 100 on every mainstream Linux build; `getconf` confirms it when available.
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

struct Cpu {
    /// utime + stime.
    own: f64,
    /// cutime + cstime (children already reaped).
    children: f64,
    comm: String,
    ppid: u32,
}

fn cpu_of(pid: u32) -> Option<Cpu> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: split after the last ')'.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_string();
    let rest: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    // Fields after the name: state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17).
    let field = |n: usize| rest.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    let ticks = clock_ticks();
    Some(Cpu {
        own: (field(14)? + field(15)?) / ticks,
        children: (field(16)? + field(17)?) / ticks,
        comm,
        ppid: field(4)? as u32,
    })
}

fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// CPU seconds of the whole Postgres server: the postmaster, its reaped children (backends
/// that exited) and its live children.
pub fn postgres_cpu_secs() -> f64 {
    let Ok(entries) = fs::read_dir("/proc") else {
        return 0.0;
    };
    let procs: Vec<(u32, Cpu)> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, cpu_of(pid)?)))
        .filter(|(_, c)| c.comm == "postgres" || c.comm.starts_with("postgres:"))
        .collect();
    let is_pg = |pid: u32| procs.iter().any(|(p, _)| *p == pid);
    procs
        .iter()
        .map(|(_, c)| {
            if is_pg(c.ppid) {
                c.own
            } else {
                // The postmaster: itself plus every backend it has reaped.
                c.own + c.children
            }
        })
        .sum()
}

/// CPU seconds of this benchmark process (the load generator).
pub fn self_cpu_secs() -> f64 {
    cpu_of(std::process::id()).map(|c| c.own).unwrap_or(0.0)
}
