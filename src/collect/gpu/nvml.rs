//! NVIDIA GPUs through NVML, loaded at run time with `nvml-wrapper` (no
//! link-time dependency: one binary runs on hosts with and without the
//! driver). Every GPU is listed.
//!
//! Memory: `nvmlDeviceGetMemoryInfo_v2` where the driver has it (R510 and
//! later), so `memory_used` leaves out the driver-reserved memory and
//! matches `nvidia-smi` (on an H200 the v1 call counts 615 MiB "used" on an
//! idle card). nvml-wrapper 0.10 offers only the v1 call, so the v2 symbol
//! is resolved here from the same library and called with the device's
//! handle; where it is missing or refuses, the v1 call is used.
//!
//! A GPU whose calls fail (fallen off the bus, reset) is left out of the
//! list, with one log line when it goes and one when it comes back.

use super::{Gpu, DEFAULT_NVML_LIB};
use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::{Device, Nvml};
use std::collections::BTreeSet;
use std::ffi::{c_int, c_void, OsStr, OsString};
use std::time::Instant;

/// At most this many GPUs are read: far above any host (the largest
/// NVSwitch systems have 16 per host), and it bounds the loop should a
/// broken library report a huge count.
pub const MAX_GPUS: u32 = 64;

/// `nvmlMemory_v2_t`.
#[repr(C)]
#[derive(Debug, Default)]
struct MemoryV2 {
    version: u32,
    total: u64,
    reserved: u64,
    free: u64,
    used: u64,
}

/// `nvmlMemory_v2`: `NVML_STRUCT_VERSION(Memory, 2)`, the struct's size
/// with the version number in the top byte.
const MEMORY_V2_VERSION: u32 = std::mem::size_of::<MemoryV2>() as u32 | (2 << 24);

/// `nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t, nvmlMemory_v2_t *)`.
type MemoryInfoV2 = unsafe extern "C" fn(*mut c_void, *mut MemoryV2) -> c_int;

const NVML_SUCCESS: c_int = 0;
const NVML_ERROR_GPU_IS_LOST: c_int = 15;

/// NVML, initialised.
struct Loaded {
    /// Dropped first: `nvmlShutdown`, then its reference to the library.
    nvml: Nvml,
    mem_v2: Option<MemoryInfoV2>,
    /// A second reference to the library NVML runs on: keeps `mem_v2` valid.
    _lib: libloading::Library,
    count: u32,
    from: String,
}

/// The NVIDIA source: NVML when it loaded, and which GPUs stopped answering.
pub struct Nvidia {
    /// `SOCKAGENT_NVML_LIB`, else `DEFAULT_NVML_LIB` then `libnvidia-ml.so`.
    lib: Option<OsString>,
    /// Boxed: NVML's function table is ~10 KiB, and the probe that finds no
    /// NVML (most hosts) should not touch that much stack.
    loaded: Option<Box<Loaded>>,
    /// NVML's absence was logged (once at info; later tries at debug).
    told: bool,
    lost: BTreeSet<u32>,
}

/// Opens `path`, checks it is an NVML library, initialises NVML.
fn open(path: &OsStr) -> Result<Box<Loaded>, String> {
    let from = path.to_string_lossy().into_owned();
    // SAFETY: loading a library runs its initialisers; this is the NVIDIA
    // driver's NVML library (or the one the operator named), whose
    // initialisers are what every NVML user runs.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| e.to_string())?;
    // nvml-wrapper's Drop calls nvmlShutdown through an `expect`: a library
    // without these two symbols must not get that far.
    for sym in ["nvmlInit_v2", "nvmlShutdown"] {
        let mut name = sym.as_bytes().to_vec();
        name.push(0);
        // SAFETY: only the symbol's presence is checked; it is not called.
        if unsafe { lib.get::<unsafe extern "C" fn() -> c_int>(&name) }.is_err() {
            return Err(format!("{from}: not an NVML library (no {sym})"));
        }
    }
    // SAFETY: the symbol has this C signature in every NVML that exports it
    // (nvml.h, R510 and later); the pointer stays valid while `lib` is open.
    let mem_v2 = unsafe { lib.get::<MemoryInfoV2>(b"nvmlDeviceGetMemoryInfo_v2\0") }
        .ok()
        .map(|s| *s);
    init(path, from, lib, mem_v2)
}

/// NVML's own initialisation, apart from `open` so that its ~10 KiB stack
/// frame is only entered where the library exists: stack pages once
/// touched stay resident for the agent's life.
#[inline(never)]
fn init(
    path: &OsStr,
    from: String,
    lib: libloading::Library,
    mem_v2: Option<MemoryInfoV2>,
) -> Result<Box<Loaded>, String> {
    let nvml = Nvml::builder()
        .lib_path(path)
        .init()
        .map_err(|e| format!("{from}: {e}"))?;
    let count = nvml
        .device_count()
        .map_err(|e| format!("{from}: device count: {e}"))?;
    Ok(Box::new(Loaded {
        nvml,
        mem_v2,
        _lib: lib,
        count,
        from,
    }))
}

/// Errors that mean "this reading is not available on this GPU", as
/// opposed to "this GPU is not answering".
fn optional<T>(r: Result<T, NvmlError>) -> Result<Option<T>, NvmlError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(
            NvmlError::NotSupported
            | NvmlError::NoPermission
            | NvmlError::NoData
            | NvmlError::FunctionNotFound
            | NvmlError::FailedToLoadSymbol(_),
        ) => Ok(None),
        Err(e) => Err(e),
    }
}

/// (total, used) bytes: the v2 call where it answers, else v1.
fn memory(l: &Loaded, d: &Device) -> Result<(u64, u64), NvmlError> {
    if let Some(f) = l.mem_v2 {
        let mut m = MemoryV2 {
            version: MEMORY_V2_VERSION,
            ..MemoryV2::default()
        };
        // SAFETY: `f` is nvmlDeviceGetMemoryInfo_v2 of the library NVML was
        // initialised from (kept open by `_lib`); the handle comes from that
        // NVML and lives while `l.nvml` does; `m` is an nvmlMemory_v2_t with
        // its version set, as the call requires.
        let rc = unsafe { f(d.handle().cast::<c_void>(), &mut m) };
        match rc {
            NVML_SUCCESS => return Ok((m.total, m.used)),
            NVML_ERROR_GPU_IS_LOST => return Err(NvmlError::GpuLost),
            // NOT_SUPPORTED, ARGUMENT_VERSION_MISMATCH...: the v1 call
            _ => {}
        }
    }
    let m = d.memory_info()?;
    Ok((m.total, m.used))
}

fn read_device(l: &Loaded, i: u32, temps: bool) -> Result<Gpu, NvmlError> {
    let d = l.nvml.device_by_index(i)?;
    let name = d.name()?;
    let (total, used) = memory(l, &d)?;
    let usage = optional(d.utilization_rates())?.map(|u| u.gpu.min(100) as f32);
    let temp_c = if temps {
        optional(d.temperature(TemperatureSensor::Gpu))?.map(|t| t as f32)
    } else {
        None
    };
    Ok(Gpu {
        name,
        vendor: "nvidia",
        usage,
        memory_total: Some(total),
        memory_used: Some(used),
        temp_c,
    })
}

impl Nvidia {
    pub fn new(lib: Option<OsString>) -> Self {
        Nvidia {
            lib,
            loaded: None,
            told: false,
            lost: BTreeSet::new(),
        }
    }

    /// Loads NVML if it is not loaded; if it is, refreshes the GPU count,
    /// and reloads it when NVML or every GPU stopped answering (a driver
    /// reload leaves the old session dead).
    pub fn probe(&mut self) {
        if let Some(l) = &mut self.loaded {
            match l.nvml.device_count() {
                Ok(n) if n == 0 || (self.lost.len() as u64) < u64::from(n.min(MAX_GPUS)) => {
                    if n != l.count {
                        log::info!("NVML: {} NVIDIA GPU(s), was {}", n, l.count);
                        l.count = n;
                        self.lost.retain(|i| *i < n);
                    }
                    return;
                }
                Ok(_) => log::info!("NVML: every NVIDIA GPU stopped answering; reloading NVML"),
                Err(e) => log::info!("NVML stopped answering ({e}); reloading it"),
            }
            self.loaded = None;
            self.lost.clear();
        }
        let paths: Vec<&OsStr> = match &self.lib {
            Some(p) => vec![p.as_os_str()],
            None => vec![OsStr::new(DEFAULT_NVML_LIB), OsStr::new("libnvidia-ml.so")],
        };
        let mut why = Vec::new();
        for p in paths {
            match open(p) {
                Ok(l) => {
                    let driver = l.nvml.sys_driver_version().ok();
                    let (from, count) = (l.from.clone(), l.count);
                    self.loaded = Some(l);
                    self.told = false;
                    // One sample now: its names go in the log, and its cost
                    // is the real driver's figure (benches/README.md).
                    let t0 = Instant::now();
                    let mut first = Vec::new();
                    self.sample(true, &mut first);
                    let took = t0.elapsed();
                    let names: Vec<&str> = first.iter().map(|g| g.name.as_str()).collect();
                    log::info!(
                        "NVML loaded from {from} (driver {}): {count} NVIDIA GPU(s) [{}], first sample {} µs",
                        driver.as_deref().unwrap_or("unknown"),
                        names.join(", "),
                        took.as_micros()
                    );
                    return;
                }
                Err(e) => why.push(e),
            }
        }
        let why = why.join("; ");
        if self.told {
            log::debug!("NVML still not loaded: {why}");
        } else {
            log::info!(
                "no NVIDIA GPUs: NVML not loaded ({why}); trying again every {} s",
                crate::collect::rediscover::REDISCOVER.as_secs()
            );
            self.told = true;
        }
    }

    /// Appends every answering GPU's reading to `out`.
    pub fn sample(&mut self, temps: bool, out: &mut Vec<Gpu>) {
        let Some(l) = &self.loaded else {
            return;
        };
        for i in 0..l.count.min(MAX_GPUS) {
            match read_device(l, i, temps) {
                Ok(g) => {
                    if self.lost.remove(&i) {
                        log::info!("NVIDIA GPU {i} answers again");
                    }
                    out.push(g);
                }
                Err(e) => {
                    if self.lost.insert(i) {
                        log::warn!("NVIDIA GPU {i} left out of the list: {e}");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_v2_struct_matches_nvml_h() {
        // unsigned int + 4 unsigned long long, 8-aligned: 40 bytes
        assert_eq!(std::mem::size_of::<MemoryV2>(), 40);
        assert_eq!(MEMORY_V2_VERSION, 0x0200_0028);
    }

    #[test]
    fn missing_library_is_an_error_not_a_panic() {
        let mut n = Nvidia::new(Some("/nonexistent/libnvidia-ml.so.1".into()));
        n.probe();
        assert!(n.loaded.is_none() && n.told);
        let mut out = Vec::new();
        n.sample(true, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn a_library_that_is_not_nvml_is_refused() {
        // libc has neither nvmlInit_v2 nor nvmlShutdown
        let e = open(OsStr::new("libc.so.6")).err().unwrap();
        assert!(e.contains("not an NVML library"), "{e}");
    }
}
