//! [`Placement`]: which CPU each worker is pinned to under `LatticeConfig::pin`.
//!
//! Worker `k` goes to `cpus[k % cpus.len()]`. The order matters because consecutive workers
//! form the barrier's 12-fold groups and reduce neighbouring segments: they should share caches.
//!
//! * With the `hwloc` feature (needs `libhwloc-dev` and `libudev-dev`), the order comes from
//!   the hardware topology (through `hwlocality`): one CPU of every core first, cores in
//!   topology order (so a group's cores sit under the same L3 cache and NUMA node as far as
//!   the machine allows), then the cores' second hardware threads, and so on. Compute-bound
//!   workers thus get a core each before any two share one.
//! * Without it, the operating system's CPU order (`core_affinity`), which on many machines
//!   interleaves hardware threads and sockets.

use std::collections::HashMap;
use std::fmt;

/// One logical CPU (hwloc's "PU") as the ordering sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cpu {
    /// The operating system's CPU number (what pinning takes).
    pub os_index: usize,
    /// Its core, in topology order.
    pub core: usize,
}

/// The CPUs workers are pinned to, in order, and where that order came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// OS CPU numbers; worker `k` is pinned to `cpus[k % cpus.len()]`.
    pub cpus: Vec<usize>,
    /// Where the order came from, for the start-up report.
    pub source: String,
}

impl Placement {
    /// The placement of this machine: from hwloc with the `hwloc` feature (falling back to the
    /// OS order if hwloc fails), else the OS order. `None` if no CPU list is available.
    pub fn discover() -> Option<Self> {
        #[cfg(feature = "hwloc")]
        match hwloc::placement() {
            Ok(p) => return Some(p),
            Err(e) => tracing::warn!("hwloc topology unavailable ({e}); pinning in OS CPU order"),
        }
        let cpus: Vec<usize> = core_affinity::get_core_ids()?
            .into_iter()
            .map(|c| c.id)
            .collect();
        (!cpus.is_empty()).then(|| Placement {
            source: format!(
                "OS CPU order, {} CPUs (build with the `hwloc` feature for topology order)",
                cpus.len()
            ),
            cpus,
        })
    }

    /// The CPU worker `k` is pinned to.
    pub fn cpu_of(&self, k: usize) -> usize {
        self.cpus[k % self.cpus.len()]
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)
    }
}

/// Orders `cpus` (given in topology order) one per core first, cores in the order they first
/// appear, then every core's second CPU, and so on.
pub fn core_first_order(cpus: &[Cpu]) -> Vec<usize> {
    // Per core: its position in order of first appearance, and how many of its CPUs came yet.
    let mut cores: HashMap<usize, (usize, usize)> = HashMap::new();
    let mut keyed: Vec<((usize, usize), usize)> = cpus
        .iter()
        .map(|c| {
            let next = cores.len();
            let (pos, seen) = cores.entry(c.core).or_insert((next, 0));
            *seen += 1;
            ((*seen - 1, *pos), c.os_index)
        })
        .collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, cpu)| cpu).collect()
}

#[cfg(feature = "hwloc")]
mod hwloc {
    use hwlocality::Topology;
    use hwlocality::object::types::ObjectType;

    use super::{Cpu, Placement, core_first_order};

    /// Reads the topology and orders its PUs with [`core_first_order`].
    pub(super) fn placement() -> Result<Placement, String> {
        let topo = Topology::new().map_err(|e| e.to_string())?;
        let count = |ty| topo.objects_with_type(ty).count();
        let mut cpus = Vec::new();
        for pu in topo.objects_with_type(ObjectType::PU) {
            let os_index = pu.os_index().ok_or("a PU without an OS index")?;
            // A PU outside any core (rare) counts as a core of its own.
            let core = pu
                .first_ancestor_with_type(ObjectType::Core)
                .map_or(usize::MAX - os_index, |c| c.logical_index());
            cpus.push(Cpu { os_index, core });
        }
        if cpus.is_empty() {
            return Err("no PUs in the topology".into());
        }
        Ok(Placement {
            source: format!(
                "hwloc topology order: {} package(s), {} NUMA node(s), {} L3 cache(s), {} cores, {} CPUs",
                count(ObjectType::Package),
                count(ObjectType::NUMANode),
                count(ObjectType::L3Cache),
                count(ObjectType::Core),
                cpus.len()
            ),
            cpus: core_first_order(&cpus),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_cpu_per_core_before_any_core_gets_two() {
        // Two cores with two hardware threads each, numbered as Linux often does (the second
        // thread of core 0 is CPU 2), listed in topology order.
        let cpus = [
            Cpu {
                os_index: 0,
                core: 0,
            },
            Cpu {
                os_index: 2,
                core: 0,
            },
            Cpu {
                os_index: 1,
                core: 1,
            },
            Cpu {
                os_index: 3,
                core: 1,
            },
        ];
        assert_eq!(core_first_order(&cpus), [0, 1, 2, 3]);
        // Cores keep their topology order even when their numbers do not.
        let cpus = [
            Cpu {
                os_index: 5,
                core: 7,
            },
            Cpu {
                os_index: 4,
                core: 3,
            },
        ];
        assert_eq!(core_first_order(&cpus), [5, 4]);
    }

    #[test]
    fn discovery_lists_this_machines_cpus_once_each() {
        let Some(p) = Placement::discover() else {
            return; // a platform without a CPU list: nothing to pin to
        };
        let mut sorted = p.cpus.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), p.cpus.len(), "{p:?}");
        assert_eq!(p.cpu_of(p.cpus.len()), p.cpus[0]);
        if cfg!(feature = "hwloc") {
            assert!(p.source.starts_with("hwloc"), "{p}");
        }
    }
}
