//! The CPU share of a Lambda memory size, enforced with a cgroup's CPU quota.
//!
//! Lambda gives a function CPU in proportion to its memory: one full vCPU at 1,769 MB, so
//! a 128 MB function gets 128/1769 of one core. The harness reproduces that with the cgroup
//! `cpu` controller: a cgroup per memory size with a quota of `memory / 1769` of one core
//! per 100 ms period (`cpu.cfs_quota_us` under cgroup v1, `cpu.max` under v2), and every
//! process it measures started inside it.
//!
//! A process is started inside the cgroup without code between `fork` and `exec` (the
//! workspace forbids `unsafe`): a short-lived thread of the harness moves itself into the
//! cgroup (cgroup v1 places threads one by one) and spawns the process, which inherits the
//! cgroup of the thread that forked it. The harness's other threads stay unconfined.
//! Under cgroup v2 the same needs a threaded cgroup; this machine mounts v1, and v2 is
//! reported as unavailable rather than half-supported.

use std::path::{Path, PathBuf};

/// The CFS period, µs.
pub const PERIOD_US: u64 = 100_000;

/// The memory sizes measured, MB.
pub const SIZES: [u32; 3] = [128, 512, 1769];

/// The memory at which Lambda gives one full vCPU, MB.
const FULL_CORE_MB: u64 = 1769;

/// The quota per [`PERIOD_US`] for `memory_mb`, µs (one core at most).
pub fn quota_us(memory_mb: u32) -> u64 {
    (u64::from(memory_mb) * PERIOD_US / FULL_CORE_MB).min(PERIOD_US)
}

/// A memory size's CPU share: the cgroup that enforces it.
#[derive(Clone, Debug)]
pub struct Share {
    /// The memory size, MB.
    pub memory_mb: u32,
    /// The CPU quota per period, µs.
    pub quota_us: u64,
    /// The cgroup directory.
    dir: PathBuf,
}

/// Where cgroup v1 mounts the `cpu` controller.
const V1_CPU: &str = "/sys/fs/cgroup/cpu";

impl Share {
    /// Creates (or reuses) `bff-bench-<memory>` under the `cpu` controller with the quota.
    pub fn create(memory_mb: u32) -> Result<Self, String> {
        let root = Path::new(V1_CPU);
        if !root.join("cpu.cfs_quota_us").is_file() {
            return Err(format!(
                "no cgroup v1 cpu controller at {V1_CPU} (cgroup v2 would need a threaded cgroup, not implemented)"
            ));
        }
        let dir = root.join(format!("bff-bench-{memory_mb}"));
        if !dir.is_dir() {
            std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let quota_us = quota_us(memory_mb);
        write(&dir.join("cpu.cfs_period_us"), &PERIOD_US.to_string())?;
        write(&dir.join("cpu.cfs_quota_us"), &quota_us.to_string())?;
        Ok(Self {
            memory_mb,
            quota_us,
            dir,
        })
    }

    /// Runs `spawn` (which starts a process) on a thread placed in the cgroup, so the
    /// process starts inside it; `spawn` runs within the current Tokio runtime.
    pub fn spawn<T: Send>(&self, spawn: impl FnOnce() -> T + Send) -> Result<T, String> {
        let runtime = tokio::runtime::Handle::current();
        let tasks = self.dir.join("tasks");
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    let _entered = runtime.enter();
                    let thread = std::fs::read_link("/proc/thread-self").map_err(|e| format!("thread id: {e}"))?;
                    let tid = thread
                        .file_name()
                        .and_then(|n| n.to_str())
                        .ok_or("thread id")?
                        .to_owned();
                    write(&tasks, &tid)?;
                    Ok(spawn())
                })
                .join()
                .map_err(|_| "spawning thread panicked".to_owned())?
        })
    }

    /// Whether process `pid` is in this cgroup (checked on every measured process).
    pub fn holds(&self, pid: u32) -> bool {
        let name = self.dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .map(|groups| {
                groups.lines().any(|line| {
                    let mut fields = line.splitn(3, ':');
                    let controllers = fields.nth(1).unwrap_or_default();
                    let path = fields.next().unwrap_or_default();
                    controllers.split(',').any(|c| c == "cpu") && path.trim_end_matches('/').ends_with(name)
                })
            })
            .unwrap_or(false)
    }

    /// CPU throttling counters of the cgroup (`nr_throttled`, `throttled_time` ns).
    pub fn throttled(&self) -> (u64, u64) {
        let stat = std::fs::read_to_string(self.dir.join("cpu.stat")).unwrap_or_default();
        let field = |name: &str| {
            stat.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        (field("nr_throttled "), field("throttled_time "))
    }
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    std::fs::write(path, value).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_follow_lambdas_memory_to_cpu_ratio() {
        assert_eq!(quota_us(128), 7235);
        assert_eq!(quota_us(512), 28942);
        assert_eq!(quota_us(1769), 100_000);
        assert_eq!(quota_us(3008), 100_000);
    }
}
