//! Where a webhook may point: `https` URLs (plain `http` only when the
//! deployment allows it) on public addresses. Private, loopback,
//! link-local, metadata and other special-purpose addresses are refused
//! unless an allow-listed network names them. A URL naming an address is
//! checked at creation; a host name is resolved and checked at every
//! delivery (a name may change where it points).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use url::Url;

/// What the deployment allows webhooks to reach.
#[derive(Clone, Debug, Default)]
pub struct TargetPolicy {
    /// `TENET_WEBHOOK_ALLOW_HTTP`: plain `http` URLs (for development).
    pub allow_http: bool,
    /// `TENET_WEBHOOK_ALLOW_NETS`: networks allowed although not public.
    pub allow_nets: Vec<IpNet>,
}

/// Longest URL accepted.
pub const URL_MAX: usize = 2_000;

impl TargetPolicy {
    /// Parses `TENET_WEBHOOK_ALLOW_NETS` (comma-separated CIDRs; a bare
    /// address is its own /32 or /128).
    pub fn parse_nets(text: &str) -> Result<Vec<IpNet>, String> {
        text.split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(|part| {
                part.parse::<IpNet>()
                    .or_else(|_| part.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{part:?} is not a CIDR (such as 127.0.0.0/8)"))
            })
            .collect()
    }

    /// Checks a URL as it is given: scheme, host, no credentials, and an
    /// address it names literally. Answers why it is refused.
    pub fn check_url(&self, text: &str) -> Result<Url, String> {
        if text.len() > URL_MAX {
            return Err(format!("must be at most {URL_MAX} characters"));
        }
        let url = Url::parse(text).map_err(|_| "must be an absolute URL".to_owned())?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => return Err("must be https (plain http is not allowed here)".to_owned()),
            _ => return Err("must be an https URL".to_owned()),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry credentials".to_owned());
        }
        match url.host() {
            None => return Err("must name a host".to_owned()),
            Some(url::Host::Ipv4(ip)) => self.check_address(IpAddr::V4(ip))?,
            Some(url::Host::Ipv6(ip)) => self.check_address(IpAddr::V6(ip))?,
            Some(url::Host::Domain(_)) => {}
        }
        Ok(url)
    }

    /// Whether deliveries may go to `ip`: public, or allow-listed.
    pub fn check_address(&self, ip: IpAddr) -> Result<(), String> {
        let ip = canonical(ip);
        if self.allow_nets.iter().any(|net| net.contains(&ip)) {
            return Ok(());
        }
        match classify(ip) {
            Class::Public => Ok(()),
            class => Err(format!(
                "resolves to {ip}, a {} address, which webhooks may not reach",
                class.name()
            )),
        }
    }
}

/// What kind of address an IP is, as far as reaching it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Public,
    Loopback,
    Private,
    LinkLocal,
    /// Cloud instance metadata (169.254.169.254, fd00:ec2::254).
    Metadata,
    /// Unspecified, broadcast, documentation, multicast, shared, reserved.
    Special,
}

impl Class {
    pub fn name(self) -> &'static str {
        match self {
            Class::Public => "public",
            Class::Loopback => "loopback",
            Class::Private => "private",
            Class::LinkLocal => "link-local",
            Class::Metadata => "metadata",
            Class::Special => "special-purpose",
        }
    }
}

/// An IPv4 address mapped into IPv6 is checked as the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

pub fn classify(ip: IpAddr) -> Class {
    match canonical(ip) {
        IpAddr::V4(ip) => classify_v4(ip),
        IpAddr::V6(ip) => classify_v6(ip),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Class {
    let [a, b, c, _] = ip.octets();
    if ip == Ipv4Addr::new(169, 254, 169, 254) || ip == Ipv4Addr::new(100, 100, 100, 200) {
        return Class::Metadata;
    }
    if ip.is_loopback() {
        return Class::Loopback;
    }
    if ip.is_private() {
        return Class::Private;
    }
    if ip.is_link_local() {
        return Class::LinkLocal;
    }
    let special = ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        // Shared address space (carrier-grade NAT), 100.64.0.0/10.
        || (a == 100 && (64..128).contains(&b))
        // IETF protocol assignments, 192.0.0.0/24; benchmarking, 198.18.0.0/15.
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        // Reserved, 240.0.0.0/4.
        || a >= 240;
    if special {
        Class::Special
    } else {
        Class::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> Class {
    let segments = ip.segments();
    if segments == [0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254] {
        return Class::Metadata;
    }
    if ip.is_loopback() {
        return Class::Loopback;
    }
    if ip.is_unspecified() || ip.is_multicast() {
        return Class::Special;
    }
    // Unique local, fc00::/7.
    if segments[0] & 0xfe00 == 0xfc00 {
        return Class::Private;
    }
    // Link-local, fe80::/10.
    if segments[0] & 0xffc0 == 0xfe80 {
        return Class::LinkLocal;
    }
    // Documentation 2001:db8::/32; IPv4-compatible and NAT64 forms are
    // refused rather than decoded.
    if (segments[0] == 0x2001 && segments[1] == 0x0db8)
        || segments[0] == 0
        || (segments[0] == 0x64 && segments[1] == 0xff9b)
    {
        return Class::Special;
    }
    Class::Public
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn addresses_are_classified() {
        assert_eq!(classify(ip("127.0.0.1")), Class::Loopback);
        assert_eq!(classify(ip("::1")), Class::Loopback);
        assert_eq!(classify(ip("10.0.0.1")), Class::Private);
        assert_eq!(classify(ip("172.16.5.4")), Class::Private);
        assert_eq!(classify(ip("192.168.1.1")), Class::Private);
        assert_eq!(classify(ip("169.254.169.254")), Class::Metadata);
        assert_eq!(classify(ip("169.254.1.1")), Class::LinkLocal);
        assert_eq!(classify(ip("fe80::1")), Class::LinkLocal);
        assert_eq!(classify(ip("fd12::1")), Class::Private);
        assert_eq!(classify(ip("::ffff:127.0.0.1")), Class::Loopback);
        assert_eq!(classify(ip("::ffff:10.1.2.3")), Class::Private);
        assert_eq!(classify(ip("0.0.0.0")), Class::Special);
        assert_eq!(classify(ip("100.64.0.1")), Class::Special);
        assert_eq!(classify(ip("93.184.216.34")), Class::Public);
        assert_eq!(classify(ip("2606:4700::1111")), Class::Public);
    }

    #[test]
    fn allow_listed_networks_open_what_is_otherwise_refused() {
        let strict = TargetPolicy::default();
        assert!(strict.check_address(ip("127.0.0.1")).is_err());
        let open = TargetPolicy {
            allow_http: false,
            allow_nets: TargetPolicy::parse_nets("127.0.0.0/8, ::1").expect("CIDRs"),
        };
        assert!(open.check_address(ip("127.0.0.1")).is_ok());
        assert!(open.check_address(ip("::1")).is_ok());
        assert!(open.check_address(ip("10.0.0.1")).is_err());
        assert!(TargetPolicy::parse_nets("127.0.0.0/33").is_err());
        assert!(TargetPolicy::parse_nets("").expect("empty").is_empty());
    }

    #[test]
    fn urls_must_be_https_without_credentials_or_a_refused_address() {
        let strict = TargetPolicy::default();
        assert!(strict.check_url("https://hooks.example.com/in").is_ok());
        assert!(strict.check_url("http://hooks.example.com/in").is_err());
        assert!(strict.check_url("ftp://hooks.example.com/in").is_err());
        assert!(
            strict
                .check_url("https://user:pw@hooks.example.com/")
                .is_err()
        );
        assert!(strict.check_url("not a url").is_err());
        for refused in [
            "https://127.0.0.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://10.0.0.1/",
            "https://[::1]/",
        ] {
            assert!(strict.check_url(refused).is_err(), "{refused}");
        }
        let dev = TargetPolicy {
            allow_http: true,
            allow_nets: TargetPolicy::parse_nets("127.0.0.0/8").expect("CIDR"),
        };
        assert!(dev.check_url("http://127.0.0.1:8080/hook").is_ok());
        assert!(dev.check_url("http://10.0.0.1/hook").is_err());
    }
}
