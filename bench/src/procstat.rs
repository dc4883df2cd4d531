//! CPU time and peak RSS of a process tree, from `/proc`.
//!
//! CPU: `utime + stime` of `/proc/<pid>/stat` (all threads), summed over the process and its
//! descendants (gunicorn's workers). Peak RSS: `VmHWM` of `/proc/<pid>/status`, reset at a phase
//! start by writing `5` to `/proc/<pid>/clear_refs`, summed over the tree (for several processes
//! a sum of per-process peaks: an upper bound).

use std::collections::HashMap;

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// (ppid, utime + stime in ticks) of one process.
fn stat(pid: u32) -> Option<(u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

/// `root` and every live descendant.
pub fn tree(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some((ppid, _)) = stat(pid) {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        if let Some(kids) = children.get(&out[i]) {
            out.extend(kids.iter().copied());
        }
        i += 1;
    }
    out
}

/// CPU seconds (user + system) used so far by `pids`.
pub fn cpu_seconds(pids: &[u32]) -> f64 {
    let ticks: u64 = pids.iter().filter_map(|&p| stat(p)).map(|(_, t)| t).sum();
    ticks as f64 / ticks_per_second()
}

/// Resets the peak RSS of `pids` to their current RSS.
pub fn reset_peak_rss(pids: &[u32]) {
    for pid in pids {
        let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    }
}

/// Sum of `VmHWM` of `pids`, in KiB.
pub fn peak_rss_kib(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .sum()
}

/// A process tree measured over one phase.
pub struct Meter {
    root: u32,
    pids: Vec<u32>,
    cpu_at_start: f64,
}

impl Meter {
    /// Starts measuring: resets the peak RSS and notes the CPU time.
    pub fn start(root: u32) -> Self {
        let pids = tree(root);
        reset_peak_rss(&pids);
        let cpu_at_start = cpu_seconds(&pids);
        Self {
            root,
            pids,
            cpu_at_start,
        }
    }

    /// (CPU seconds since start, peak RSS in KiB since start). Processes that appeared in the
    /// tree meanwhile count from their own start.
    pub fn stop(&self) -> (f64, u64) {
        let now = tree(self.root);
        let new: Vec<u32> = now
            .iter()
            .copied()
            .filter(|p| !self.pids.contains(p))
            .collect();
        let old: Vec<u32> = now
            .iter()
            .copied()
            .filter(|p| self.pids.contains(p))
            .collect();
        let cpu = cpu_seconds(&old) - self.cpu_at_start + cpu_seconds(&new);
        (cpu.max(0.0), peak_rss_kib(&now))
    }
}
