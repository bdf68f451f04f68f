//! Port sets: sorted, disjoint, inclusive ranges, and the ports a rule covers.

use super::*;

pub(super) type Ports = Vec<(u16, u16)>;

pub(super) fn all_ports() -> Ports {
    vec![(0, 65535)]
}

pub(super) fn intersect(a: &[(u16, u16)], b: &[(u16, u16)]) -> Ports {
    let mut out = Vec::new();
    for &(af, at) in a {
        for &(bf, bt) in b {
            let (f, t) = (af.max(bf), at.min(bt));
            if f <= t {
                out.push((f, t));
            }
        }
    }
    normalize(out)
}

pub(super) fn subtract(a: &[(u16, u16)], b: &[(u16, u16)]) -> Ports {
    let mut cur: Ports = a.to_vec();
    for &(bf, bt) in b {
        let mut next = Vec::new();
        for (f, t) in cur {
            if bt < f || bf > t {
                next.push((f, t));
                continue;
            }
            if bf > f {
                next.push((f, bf - 1));
            }
            if bt < t {
                next.push((bt + 1, t));
            }
        }
        cur = next;
    }
    cur
}

pub(super) fn union(a: &[(u16, u16)], b: &[(u16, u16)]) -> Ports {
    normalize(a.iter().chain(b).copied().collect())
}

pub(super) fn normalize(mut v: Ports) -> Ports {
    v.sort();
    let mut out: Ports = Vec::new();
    for (f, t) in v {
        match out.last_mut() {
            Some(last) if (last.1 as u32) + 1 >= f as u32 => last.1 = last.1.max(t),
            _ => out.push((f, t)),
        }
    }
    out
}

pub(super) fn ports_text(p: &[(u16, u16)]) -> String {
    let parts: Vec<String> = p
        .iter()
        .map(|&(f, t)| {
            if f == t {
                f.to_string()
            } else {
                format!("{f}-{t}")
            }
        })
        .collect();
    match parts.len() {
        0 => "none".into(),
        1 => parts[0].clone(),
        n => format!("{} and {}", parts[..n - 1].join(", "), parts[n - 1]),
    }
}

/// The destination ports a TCP/UDP rule of `spec` covers.
pub(super) fn spec_ports(spec: PortSpec) -> Ports {
    match spec {
        PortSpec::Range { from, to } => vec![(from, to)],
        _ => all_ports(),
    }
}
