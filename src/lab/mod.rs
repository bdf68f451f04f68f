//! The lab: a ruleset's VPC as network namespaces on one Linux box, with vpcgate as the
//! only path between them (`vpcgate lab up|down|exec|status`).
//!
//! `up` makes one network namespace per ENI and one, `internet`, behind the internet
//! gateway. Each namespace's only link (`eth0`) is a TAP device that this process created
//! and then moved into the namespace (`ip link set TAP netns NS`; the file descriptor
//! stays usable), with the ENI's MAC ([`crate::live::router::eni_mac`]), its private IPv4
//! addresses and a default route via the subnet router at base + 1. The router of
//! [`crate::live`] serves all the TAPs.
//!
//! Namespaces are configured with the `ip` command (iproute2), not a netlink crate:
//! `rtnetlink` needs the tokio runtime, which nothing else in vpcgate uses, and `lab up`
//! runs a few dozen commands once.
//!
//! Every namespace is written to a state file under [`STATE_DIR`] *before* it is made,
//! so that `down` removes what `up` made, and only that, even after a crash. The TAP
//! devices need no cleanup: they are not persistent and disappear with the process that
//! holds them (which is also what makes the lab fail closed).
//!
//! Namespace names (SecureCart's ENIs have no `Name` tag, and the model keeps none): the
//! last `-` part of the ENI's first security group's name (`securecart-alb` → `alb`),
//! else a kind from the description (`ELB …` → `alb`/`nlb`, `RDSNetworkInterface` → `db`,
//! an ECS attachment → `task`), else `ec2` for an instance, else the ENI id; numbered
//! `-1`, `-2`, … in ruleset order when several ENIs share a name. SecureCart gives
//! `alb-1 alb-2 bastion app-1 app-2 app-3 db-1 db-2`.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use ipnet::Ipv4Net;

use crate::live::router::{derived_mac, eni_mac, mac_text, Port, Router};
use crate::model::{NetworkInterface, Vpc};

/// Where `up` records what it made.
pub const STATE_DIR: &str = "/run/vpcgate-lab";

/// The addresses of the `internet` namespace: a customer (first, the default source)
/// and an office, from the documentation ranges of RFC 5737.
pub const INTERNET_ADDRS: [&str; 2] = ["192.0.2.10/24", "198.51.100.7/24"];

/// One namespace of the lab.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub ns: String,
    /// The port of the router it hangs on.
    pub port: Port,
    pub eni_id: Option<String>,
    pub mac: [u8; 6],
    pub addrs: Vec<Ipv4Net>,
    pub public: Vec<Ipv4Addr>,
    /// `None`: an on-link default route (the internet namespace).
    pub gateway: Option<Ipv4Addr>,
    /// `net.ipv4.ip_local_port_range`: a load balancer picks any port in 1024-65535, a
    /// Linux instance 32768-60999.
    pub port_range: (u16, u16),
}

/// The MAC of the `internet` namespace's interface.
pub fn internet_mac() -> [u8; 6] {
    derived_mac("lab/internet")
}

fn is_load_balancer(e: &NetworkInterface) -> bool {
    e.description.starts_with("ELB ")
        || e.interface_type.contains("load_balancer")
        || e.interface_type == "network_load_balancer"
}

fn base_name(vpc: &Vpc, e: &NetworkInterface) -> String {
    let sg_name = e
        .security_groups
        .first()
        .and_then(|id| {
            vpc.security_groups
                .iter()
                .find(|g| &g.name != "default" && &g.id == id)
        })
        .map(|g| g.name.rsplit('-').next().unwrap_or("").to_ascii_lowercase())
        .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric()));
    if let Some(n) = sg_name {
        return n;
    }
    if e.description.starts_with("ELB net/") {
        "nlb".into()
    } else if is_load_balancer(e) {
        "alb".into()
    } else if e.description == "RDSNetworkInterface" {
        "db".into()
    } else if e.description.contains(":ecs:") {
        "task".into()
    } else if e.instance_id.is_some() {
        "ec2".into()
    } else {
        e.id.clone()
    }
}

/// The namespace name of each ENI (ruleset order), without prefix.
pub fn names(vpc: &Vpc) -> Vec<String> {
    let bases: Vec<String> = vpc
        .network_interfaces
        .iter()
        .map(|e| base_name(vpc, e))
        .collect();
    let mut count: HashMap<&str, usize> = HashMap::new();
    for b in &bases {
        *count.entry(b).or_default() += 1;
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    bases
        .iter()
        .map(|b| {
            if count[b.as_str()] == 1 {
                b.clone()
            } else {
                let n = seen.entry(b).or_default();
                *n += 1;
                format!("{b}-{n}")
            }
        })
        .collect()
}

/// The lab's namespaces: one per ENI that has a private IPv4 in a subnet with an IPv4
/// CIDR (ruleset order), then `internet`.
pub fn plan(vpc: &Vpc, prefix: &str) -> Vec<Node> {
    let mut nodes = Vec::new();
    for (i, (e, name)) in vpc.network_interfaces.iter().zip(names(vpc)).enumerate() {
        let Some(cidr) = vpc.subnet(&e.subnet_id).and_then(|s| s.ipv4_cidr) else {
            continue;
        };
        if e.private_ipv4.is_empty() {
            continue;
        }
        nodes.push(Node {
            ns: format!("{prefix}{name}"),
            port: Port::Eni(i as u32),
            eni_id: Some(e.id.clone()),
            mac: eni_mac(&e.id),
            addrs: e
                .private_ipv4
                .iter()
                .map(|a| Ipv4Net::new(*a, cidr.prefix_len()).expect("a prefix length of a CIDR"))
                .collect(),
            public: e.public_mappings().map(|(p, _)| p).collect(),
            gateway: Some(Ipv4Addr::from(u32::from(cidr.network()).wrapping_add(1))),
            port_range: if is_load_balancer(e) {
                (1024, 65535)
            } else {
                (32768, 60999)
            },
        });
    }
    nodes.push(Node {
        ns: format!("{prefix}internet"),
        port: Port::Igw,
        eni_id: None,
        mac: internet_mac(),
        addrs: INTERNET_ADDRS.iter().map(|a| a.parse().unwrap()).collect(),
        public: Vec::new(),
        gateway: None,
        port_range: (32768, 60999),
    });
    nodes
}

/// The `/etc/hosts` of a namespace: every ENI namespace by its primary private address
/// (seen from the internet: by its public address, where it has one), and `internet`,
/// `customer` and `office`.
pub fn hosts_file(nodes: &[Node], for_internet: bool, prefix: &str) -> String {
    let mut t = String::from("127.0.0.1\tlocalhost\n");
    for n in nodes {
        let short = n.ns.strip_prefix(prefix).unwrap_or(&n.ns);
        let addr = if n.port == Port::Igw {
            continue;
        } else if for_internet {
            match n.public.first() {
                Some(p) => *p,
                None => continue,
            }
        } else {
            n.addrs[0].addr()
        };
        t += &format!("{addr}\t{short}\n");
    }
    let customer = INTERNET_ADDRS[0].split('/').next().unwrap_or_default();
    let office = INTERNET_ADDRS[1].split('/').next().unwrap_or_default();
    t += &format!("{customer}\tinternet customer\n{office}\toffice\n");
    t
}

/// The state file of lab `name`.
pub fn state_path(name: &str) -> PathBuf {
    Path::new(STATE_DIR).join(format!("{name}.state"))
}

/// What a state file records: the `up` process, and every namespace it made or was
/// about to make.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    pub pid: Option<u32>,
    /// The `--prefix` of the namespace names.
    pub prefix: String,
    pub netns: Vec<String>,
    /// Other names of a namespace: its ENI's id and addresses (`alias NS NAME...`).
    pub aliases: Vec<(String, Vec<String>)>,
}

impl State {
    /// The namespace `what` names: a namespace of the lab, the same without the lab's
    /// prefix, an ENI id, or an address (private or public) of the namespace.
    pub fn resolve(&self, what: &str) -> Option<&str> {
        let full = format!("{}{what}", self.prefix);
        self.netns
            .iter()
            .find(|n| **n == what || **n == full)
            .map(String::as_str)
            .or_else(|| {
                self.aliases
                    .iter()
                    .find(|(_, names)| names.iter().any(|n| n == what))
                    .map(|(ns, _)| ns.as_str())
            })
    }

    pub fn read(name: &str) -> io::Result<Option<State>> {
        let text = match fs::read_to_string(state_path(name)) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut s = State::default();
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("pid", p)) => s.pid = p.trim().parse().ok(),
                Some(("netns", n)) => s.netns.push(n.trim().to_string()),
                Some(("prefix", p)) => s.prefix = p.trim().to_string(),
                Some(("alias", rest)) => {
                    let mut words = rest.split_whitespace().map(str::to_string);
                    if let Some(ns) = words.next() {
                        s.aliases.push((ns, words.collect()));
                    }
                }
                _ => {}
            }
        }
        Ok(Some(s))
    }
}

fn append_state(name: &str, line: &str) -> io::Result<()> {
    fs::create_dir_all(STATE_DIR)?;
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(state_path(name))?;
    writeln!(f, "{line}")?;
    f.sync_all()
}

/// Runs `ip ARGS`; an error names the command and says what `ip` printed.
fn ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("running `ip`: {e} (is iproute2 installed?)"),
            )
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// True when network namespace `ns` exists.
pub fn netns_exists(ns: &str) -> bool {
    Path::new("/run/netns").join(ns).exists()
}

/// True when process `pid` is another vpcgate process (a running `lab up`).
pub fn pid_is_lab(pid: u32) -> bool {
    pid != std::process::id()
        && fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains("vpcgate"))
}

/// Removes every namespace lab `name` recorded (and their `/etc/netns` folders), then
/// the state file; asks a running `up` of that lab to stop first. Idempotent: a lab that
/// is not there, or partly there after a crash, is fine. Returns the namespaces removed.
pub fn down(name: &str) -> io::Result<Vec<String>> {
    let Some(state) = State::read(name)? else {
        return Ok(Vec::new());
    };
    if let Some(pid) = state.pid.filter(|&p| pid_is_lab(p)) {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .stderr(Stdio::null())
            .status();
        // It tears its lab down itself; wait a little for it, then do it anyway.
        for _ in 0..50 {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    let mut removed = Vec::new();
    for ns in &state.netns {
        if netns_exists(ns) {
            match ip(&["netns", "del", ns]) {
                Ok(()) => removed.push(ns.clone()),
                Err(e) if !netns_exists(ns) => drop(e),
                Err(e) => return Err(e),
            }
        }
        let etc = Path::new("/etc/netns").join(ns);
        if etc.exists() {
            fs::remove_dir_all(&etc)?;
        }
    }
    for p in [reload_request_path(name), reload_result_path(name)] {
        let _ = fs::remove_file(p);
    }
    match fs::remove_file(state_path(name)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    Ok(removed)
}

/// The file in which `lab reload` names the new ruleset's paths for `lab up`.
pub fn reload_request_path(name: &str) -> PathBuf {
    Path::new(STATE_DIR).join(format!("{name}.reload"))
}

/// The file in which `lab up` answers a reload request.
pub fn reload_result_path(name: &str) -> PathBuf {
    Path::new(STATE_DIR).join(format!("{name}.reloaded"))
}

/// Writes `text` to `path` whole: a reader sees all of it or no file.
fn write_whole(path: &Path, text: &str) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    fs::write(&tmp, text)?;
    fs::rename(&tmp, path)
}

/// In `lab up`, on SIGHUP: the paths a `lab reload` asked for (the request is
/// consumed), or `None` for a plain `kill -HUP`.
pub fn take_reload_request(name: &str) -> Option<Vec<PathBuf>> {
    let path = reload_request_path(name);
    let text = fs::read_to_string(&path).ok()?;
    let _ = fs::remove_file(&path);
    let paths: Vec<PathBuf> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(PathBuf::from)
        .collect();
    (!paths.is_empty()).then_some(paths)
}

/// In `lab up`, after a reload: its outcome for the waiting `lab reload`.
pub fn write_reload_result(name: &str, result: &Result<String, String>) -> io::Result<()> {
    let text = match result {
        Ok(line) => format!("ok\n{line}\n"),
        Err(why) => format!("refused\n{why}\n"),
    };
    write_whole(&reload_result_path(name), &text)
}

/// `lab reload`: names `paths` to the `lab up` process `pid` of lab `name`, sends it
/// SIGHUP and waits up to `wait` for its answer: `Ok(Ok(line))` when the new ruleset
/// is in force, `Ok(Err(why))` when it was refused.
pub fn request_reload(
    name: &str,
    pid: u32,
    paths: &[PathBuf],
    wait: std::time::Duration,
) -> io::Result<Result<String, String>> {
    let result = reload_result_path(name);
    match fs::remove_file(&result) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let text: String = paths.iter().map(|p| format!("{}\n", p.display())).collect();
    write_whole(&reload_request_path(name), &text)?;
    let sent = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .stderr(Stdio::null())
        .status()?;
    if !sent.success() {
        return Err(io::Error::other(format!(
            "could not signal the lab's process {pid}"
        )));
    }
    let start = std::time::Instant::now();
    while start.elapsed() < wait {
        if let Ok(t) = fs::read_to_string(&result) {
            let _ = fs::remove_file(&result);
            let (status, rest) = t.split_once('\n').unwrap_or((t.as_str(), ""));
            let rest = rest.trim_end().to_string();
            return Ok(if status == "ok" { Ok(rest) } else { Err(rest) });
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        format!(
            "lab {name} (process {pid}) did not answer within {} s; see its standard error",
            wait.as_secs()
        ),
    ))
}

/// Options of `lab up`.
pub struct UpOptions {
    /// The lab's name: its state file.
    pub name: String,
    /// Put before every namespace name.
    pub prefix: String,
    /// Open the TAPs with `IFF_VNET_HDR` and offloads (GSO super-frames).
    pub offloads: bool,
    /// Worker threads, and queues per TAP.
    pub workers: usize,
}

/// A lab that is up: the router and the devices to serve.
pub struct Lab {
    pub nodes: Vec<Node>,
    pub router: Router,
    pub devices: Vec<crate::live::tap::Device>,
}

/// Builds the lab of `vpc`. On an error, what was made so far is removed again.
pub fn up(vpc: Arc<Vpc>, opts: &UpOptions, aggregation_interval: u32) -> io::Result<Lab> {
    if let Some(s) = State::read(&opts.name)? {
        if s.pid.is_some_and(pid_is_lab) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "lab {:?} is already up (process {}); `vpcgate lab down --name {}` first",
                    opts.name,
                    s.pid.unwrap_or(0),
                    opts.name
                ),
            ));
        }
        down(&opts.name)?;
    }
    let nodes = plan(&vpc, &opts.prefix);
    for n in &nodes {
        if netns_exists(&n.ns) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("network namespace {} exists already and is not this lab's: remove it or choose another --prefix", n.ns),
            ));
        }
    }
    append_state(&opts.name, &format!("pid {}", std::process::id()))?;
    append_state(&opts.name, &format!("prefix {}", opts.prefix))?;
    for n in &nodes {
        let mut names: Vec<String> = n.eni_id.iter().cloned().collect();
        names.extend(n.addrs.iter().map(|a| a.addr().to_string()));
        names.extend(n.public.iter().map(|a| a.to_string()));
        append_state(&opts.name, &format!("alias {} {}", n.ns, names.join(" ")))?;
    }
    let mut router = Router::new(vpc, aggregation_interval);
    router.set_igw_peer(internet_mac());
    let mut devices = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        if let Err(e) = make_node(opts, &nodes, n, i, &mut devices) {
            let _ = down(&opts.name);
            return Err(e);
        }
    }
    Ok(Lab {
        nodes,
        router,
        devices,
    })
}

fn make_node(
    opts: &UpOptions,
    nodes: &[Node],
    n: &Node,
    i: usize,
    devices: &mut Vec<crate::live::tap::Device>,
) -> io::Result<()> {
    let ns = n.ns.as_str();
    append_state(&opts.name, &format!("netns {ns}"))?;
    ip(&["netns", "add", ns])?;
    let dev = crate::live::tap::Device::open_queues(
        n.port,
        &format!("vgl{}n{i}", std::process::id()),
        opts.offloads,
        opts.workers,
    )?;
    ip(&["link", "set", &dev.name, "netns", ns])?;
    let range = format!(
        "net.ipv4.ip_local_port_range={} {}",
        n.port_range.0, n.port_range.1
    );
    ip(&[
        "netns",
        "exec",
        ns,
        "sysctl",
        "-qw",
        "net.ipv6.conf.all.disable_ipv6=1",
        "net.ipv6.conf.default.disable_ipv6=1",
        &range,
    ])?;
    let mac = mac_text(n.mac);
    ip(&["-n", ns, "link", "set", &dev.name, "name", "eth0"])?;
    ip(&["-n", ns, "link", "set", "eth0", "address", &mac, "up"])?;
    ip(&["-n", ns, "link", "set", "lo", "up"])?;
    for a in &n.addrs {
        ip(&["-n", ns, "addr", "add", &a.to_string(), "dev", "eth0"])?;
    }
    match n.gateway {
        Some(g) => ip(&[
            "-n",
            ns,
            "route",
            "add",
            "default",
            "via",
            &g.to_string(),
            "dev",
            "eth0",
        ])?,
        None => ip(&["-n", ns, "route", "add", "default", "dev", "eth0"])?,
    }
    let etc = Path::new("/etc/netns").join(ns);
    fs::create_dir_all(&etc)?;
    fs::write(
        etc.join("hosts"),
        hosts_file(nodes, n.port == Port::Igw, &opts.prefix),
    )?;
    devices.push(dev);
    Ok(())
}

/// Serves a lab until `stop` is set, then removes it.
pub fn run(
    lab: &mut Lab,
    name: &str,
    out: &mut crate::live::tap::Outputs,
    ctl: &mut crate::live::tap::Control<'_>,
    workers: usize,
) -> io::Result<()> {
    let served = crate::live::tap::serve_with(&mut lab.router, &lab.devices, out, ctl, workers);
    lab.devices.clear();
    let removed = down(name);
    served?;
    removed.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn securecart() -> Vpc {
        crate::load::load_str(
            "securecart.toml",
            include_str!("../../rulesets/securecart.toml"),
        )
        .unwrap()
    }

    #[test]
    fn securecart_names() {
        assert_eq!(
            names(&securecart()),
            ["alb-1", "alb-2", "bastion", "app-1", "app-2", "app-3", "db-1", "db-2"]
        );
    }

    #[test]
    fn the_plan_gives_each_eni_its_mac_addresses_gateway_and_ports() {
        let nodes = plan(&securecart(), "x-");
        assert_eq!(nodes.len(), 9);
        let alb = &nodes[0];
        assert_eq!(alb.ns, "x-alb-1");
        assert_eq!(alb.addrs, ["10.0.1.10/24".parse::<Ipv4Net>().unwrap()]);
        assert_eq!(alb.gateway, Some("10.0.1.1".parse().unwrap()));
        assert_eq!(alb.port_range, (1024, 65535));
        assert_eq!(alb.mac, eni_mac("eni-0a1b2c3d4e5f60101"));
        let bastion = &nodes[2];
        assert_eq!(bastion.port_range, (32768, 60999));
        assert_eq!(
            bastion.public,
            ["203.0.113.30".parse::<Ipv4Addr>().unwrap()]
        );
        assert_eq!(nodes[8].ns, "x-internet");
        assert_eq!(nodes[8].port, Port::Igw);
        let h = hosts_file(&nodes, false, "x-");
        assert!(h.contains("10.0.21.10\tdb-1\n"), "{h}");
        let h = hosts_file(&nodes, true, "x-");
        assert!(
            h.contains("203.0.113.30\tbastion\n") && !h.contains("db-1"),
            "{h}"
        );
    }

    #[test]
    fn exec_names_a_namespace_by_name_eni_id_or_address() {
        let s = State {
            pid: None,
            prefix: "t-".into(),
            netns: vec!["t-app-1".into(), "t-internet".into()],
            aliases: vec![(
                "t-app-1".into(),
                vec!["eni-0a1b2c3d4e5f60201".into(), "10.0.11.10".into()],
            )],
        };
        assert_eq!(s.resolve("t-app-1"), Some("t-app-1"));
        assert_eq!(s.resolve("app-1"), Some("t-app-1"));
        assert_eq!(s.resolve("eni-0a1b2c3d4e5f60201"), Some("t-app-1"));
        assert_eq!(s.resolve("10.0.11.10"), Some("t-app-1"));
        assert_eq!(s.resolve("internet"), Some("t-internet"));
        assert_eq!(s.resolve("10.0.11.11"), None);
    }
}
