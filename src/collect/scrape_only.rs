//! What only `/metrics` shows, read for a scrape: every hwmon temperature,
//! the OOM kills and the clock's sync state.

use super::collector::{Collector, Cx};
use super::error::Result;
use super::{sensors, timex, vmstat};
use std::time::Instant;

/// What only `/metrics` shows: every hwmon temperature, the OOM kills
/// and the clock's sync state. (Load average is the metrics sample's,
/// `board.load_avg`.)
#[derive(Debug, Default)]
pub struct SensorsSample {
    pub at: Option<Instant>,
    pub hwmon: sensors::HwmonTemps,
    /// `/proc/vmstat`'s `oom_kill`.
    pub vmstat: vmstat::VmStat,
    /// `adjtimex(2)`: the host's clock only.
    pub timex: timex::Timex,
}

impl Collector for SensorsSample {
    const NAME: &'static str = "sensors";
    /// The hwmon temperatures are found once.
    const REPROBE: Option<std::time::Duration> = None;

    fn collect(&mut self, cx: &mut Cx, now: Instant) -> Result<()> {
        if cx.s.temp_enabled {
            self.hwmon.refresh(&cx.s.root);
        } else {
            self.hwmon.temps.clear();
        }
        self.vmstat.refresh(&cx.s.root, &mut cx.buf);
        self.timex = timex::Timex(timex::read(&cx.s.root));
        self.at = Some(now);
        Ok(())
    }

    fn taken(&self) -> Option<Instant> {
        self.at
    }
}
