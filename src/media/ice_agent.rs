//! Where a participant's ICE agent may open sockets: only on the configured
//! local addresses (`ice.addresses`), only in the configured port range
//! (`media.rtp_port_min`/`max`), TCP listeners only if `ice.tcp`, and never
//! for UPnP.
//!
//! Left to itself, webrtcbin's libnice agent gathers on every interface
//! (one UDP socket and one ICE-TCP listener per address and participant,
//! each taking a port of the range) and runs UPnP discovery: SSDP multicast
//! on the LAN and a small HTTP server per interface, on ports outside any
//! range, asking the router to open ports for it. A server has no business
//! doing that.

use std::net::{IpAddr, UdpSocket};

use anyhow::Context as _;
use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;

/// What the agents may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcePolicy {
    /// UDP (and ICE-TCP) port range, or None for any free port.
    pub ports: Option<(u16, u16)>,
    /// Local addresses to gather on; empty: every interface.
    pub addresses: Vec<IpAddr>,
    /// Listen for ICE-TCP as well as UDP.
    pub tcp: bool,
}

impl Default for IcePolicy {
    fn default() -> Self {
        Self {
            ports: None,
            addresses: Vec::new(),
            tcp: true,
        }
    }
}

/// Checks that every configured address belongs to this machine, by
/// binding a socket to it: a candidate on a foreign address never connects.
pub fn check_addresses(addresses: &[IpAddr]) -> anyhow::Result<()> {
    for ip in addresses {
        UdpSocket::bind((*ip, 0)).with_context(|| {
            format!(
                "ice.addresses: {ip} is not an address of this machine (binding to it failed); \
                 list the machine's addresses with `ip -brief address`, or leave ice.addresses \
                 empty to use every interface"
            )
        })?;
    }
    Ok(())
}

/// Applies `policy` to `webrtcbin`'s agent. Call before the first
/// description is set, when gathering has not started.
pub fn confine(webrtcbin: &gst::Element, policy: &IcePolicy) -> anyhow::Result<()> {
    let ice = webrtcbin.property::<glib::Object>("ice-agent");
    if let Some((min, max)) = policy.ports {
        // Max first: min may not exceed the current max.
        ice.set_property("max-rtp-port", u32::from(max));
        ice.set_property("min-rtp-port", u32::from(min));
    }
    if !policy.tcp {
        ice.set_property("ice-tcp", false);
    }
    for ip in &policy.addresses {
        let added = ice.emit_by_name::<bool>("add-local-ip-address", &[&ip.to_string()]);
        anyhow::ensure!(added, "the ICE agent refused local address {ip}");
    }
    // The libnice agent behind webrtcbin's ICE object (GstWebRTCNice).
    if ice.has_property("agent") {
        let agent = ice.property::<glib::Object>("agent");
        if agent.has_property_with_type("upnp", bool::static_type()) {
            agent.set_property("upnp", false);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_foreign_address_is_named_with_the_field_and_the_fix() {
        assert!(check_addresses(&["127.0.0.1".parse().unwrap()]).is_ok());
        // TEST-NET-3, never assigned to a host.
        let err = check_addresses(&["203.0.113.77".parse().unwrap()]).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("ice.addresses: 203.0.113.77"), "{text}");
        assert!(text.contains("ip -brief address"), "{text}");
    }
}
