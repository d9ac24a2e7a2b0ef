//! CPU time and resident memory of a process, read from /proc: the server's (by its pid) and the load generator's
//! own, measured the same way so the two CPU figures per reading compare.
//!
//! CPU time is user + system from `/proc/PID/stat`, summed over all the process's threads (exited ones included),
//! in clock ticks of 10 ms: a run must use a good number of ticks for the figure to mean much, which is why the
//! throughput runs send hundreds of thousands of readings.

/// Clock ticks per second in `/proc/PID/stat` (`USER_HZ`, 100 on every Linux ABI).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds (user + system) that process `pid` has used, or `None` when it is gone or /proc is unreadable.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    stat_cpu_seconds(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// CPU seconds (user + system) that this process has used, all threads included; 0 where /proc is unreadable.
pub fn own_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat").ok().and_then(|stat| stat_cpu_seconds(&stat)).unwrap_or(0.0)
}

/// User + system seconds from the text of a `/proc/PID/stat` file.
fn stat_cpu_seconds(stat: &str) -> Option<f64> {
    // The command name (field 2) is in parentheses and may hold spaces: count fields from the last ')'.
    let after_name = stat.rsplit_once(')')?.1;
    let mut fields = after_name.split_whitespace();
    // utime and stime are fields 14 and 15 of the file, 12 and 13 after the name.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

/// Resident set size of process `pid` in KiB, or `None` when it is gone.
pub fn rss_kib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_fields_are_read_after_the_name() {
        let stat = "42 (a) b c) S 1 42 42 0 -1 4194304 103 0 0 0 250 30 0 0 20 0 1 0 22501 3133440 389";
        assert_eq!(stat_cpu_seconds(stat), Some(2.8));
    }

    #[test]
    fn this_process_is_readable() {
        assert!(cpu_seconds(std::process::id()).is_some());
        assert!(rss_kib(std::process::id()).is_some_and(|kib| kib > 0.0));
    }
}
