//! What the benchmark reads about processes from `/proc`: CPU time spent by
//! the worker, Redis, PostgreSQL and the receiver, and the worker's peak
//! resident memory.
//!
//! CPU time is `utime + stime` of `/proc/<pid>/stat`, in clock ticks. For
//! PostgreSQL, whose backends come and go, it is the sum over every live
//! `postgres` process plus the postmaster's `cutime + cstime` (the time of
//! children it has reaped), so a backend that exits between two readings is
//! still counted once.

use std::collections::HashMap;
use std::fs;
use std::process::Command;

/// CPU seconds of the processes the benchmark watches, at one instant.
#[derive(Clone, Debug, Default)]
pub struct CpuReading {
    /// Seconds per watched name.
    seconds: HashMap<&'static str, f64>,
}

/// The processes whose CPU time a scenario reports.
#[derive(Clone, Debug)]
pub struct Watched {
    /// The worker under test.
    pub worker: u32,
    /// The redis-server process.
    pub redis: Option<u32>,
    /// The webhook receiver.
    pub receiver: Option<u32>,
}

impl Watched {
    /// Reads the CPU time of every watched process, of PostgreSQL and of this
    /// process (the publisher).
    pub fn read(&self) -> CpuReading {
        let ticks = clock_ticks();
        let mut seconds = HashMap::new();
        seconds.insert("worker", process_ticks(self.worker) as f64 / ticks);
        if let Some(pid) = self.redis {
            seconds.insert("redis", process_ticks(pid) as f64 / ticks);
        }
        if let Some(pid) = self.receiver {
            seconds.insert("receiver", process_ticks(pid) as f64 / ticks);
        }
        seconds.insert("postgres", postgres_ticks() as f64 / ticks);
        seconds.insert("bench", process_ticks(std::process::id()) as f64 / ticks);
        CpuReading { seconds }
    }
}

impl CpuReading {
    /// CPU seconds of `name` between `earlier` and this reading.
    pub fn since(&self, earlier: &CpuReading, name: &str) -> f64 {
        let now = self.seconds.get(name).copied().unwrap_or(0.0);
        let then = earlier.seconds.get(name).copied().unwrap_or(0.0);
        (now - then).max(0.0)
    }
}

/// Peak resident set size (`VmHWM`) of `pid` in MiB; 0 when unreadable.
pub fn peak_rss_mb(pid: u32) -> f64 {
    status_kib(pid, "VmHWM:") as f64 / 1024.0
}

/// Current resident set size (`VmRSS`) of `pid` in MiB; 0 when unreadable.
pub fn rss_mb(pid: u32) -> f64 {
    status_kib(pid, "VmRSS:") as f64 / 1024.0
}

/// A one-line description of the machine: cores, memory and CPU model.
pub fn machine() -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map_or("unknown CPU", |(_, model)| model.trim())
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let memory_gib = fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    format!("{cores} cores, {memory_gib:.0} GiB, {model}")
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` gives them: other
/// work on the machine shows up in every figure.
pub fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn status_kib(pid: u32, field: &str) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Clock ticks per second, as `getconf CLK_TCK` says (100 on Linux nearly
/// always, which is also the fallback).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The fields of `/proc/<pid>/stat` after the command name, which may itself
/// hold spaces and parentheses.
struct Stat {
    comm: String,
    parent: u32,
    own_ticks: u64,
    children_ticks: u64,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_owned();
    // After the name: state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17).
    let fields: Vec<&str> = text[close + 2..].split_whitespace().collect();
    let field = |number: usize| -> u64 {
        fields
            .get(number - 3)
            .and_then(|f| f.parse().ok())
            .unwrap_or(0)
    };
    Some(Stat {
        comm,
        parent: field(4) as u32,
        own_ticks: field(14) + field(15),
        children_ticks: field(16) + field(17),
    })
}

fn process_ticks(pid: u32) -> u64 {
    stat(pid).map_or(0, |stat| stat.own_ticks)
}

/// Every live `postgres` process, plus what the postmaster's reaped children
/// used.
fn postgres_ticks() -> u64 {
    let Ok(entries) = fs::read_dir("/proc") else {
        return 0;
    };
    let stats: Vec<(u32, Stat)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, stat(pid)?)))
        .filter(|(_, stat)| stat.comm == "postgres")
        .collect();
    let postgres_pids: Vec<u32> = stats.iter().map(|(pid, _)| *pid).collect();
    stats
        .iter()
        .map(|(_, stat)| {
            let is_postmaster = !postgres_pids.contains(&stat.parent);
            stat.own_ticks
                + if is_postmaster {
                    stat.children_ticks
                } else {
                    0
                }
        })
        .sum()
}
