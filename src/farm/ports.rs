//! Where a farm serves each of its devices: on a port of its own, or, as a
//! serial-to-TCP gateway does, as one of several Modbus unit ids behind a
//! shared port. The one rule, used by the event loops, the handle and the
//! emitted config alike:
//!
//! ```text
//! U = units_per_port (1..=247)
//! device i          is served on port index i / U, as unit id i % U + 1
//! port p, unit u    is device p*U + u - 1, if 1 <= u <= U and it exists
//! ports             ceil(devices / U); the last may hold fewer than U
//! ```
//!
//! With U = 1 every device has a port of its own and answers whatever unit
//! id a request carries (the farm has always echoed it, and clients that
//! send 0 or 255 to a Modbus TCP device rely on that). With U > 1 the unit
//! id picks the device, and a request for any other unit id is answered
//! with exception 0x0B, as a gateway whose target does not respond.

/// Unit ids behind one port at most: Modbus unit ids 1..=247 address
/// devices (0 is broadcast, 248..=255 are reserved).
pub const UNITS_PER_PORT_MAX: u32 = 247;

/// How a farm's devices are spread over its ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortLayout {
    devices: u32,
    units_per_port: u32,
}

impl PortLayout {
    /// `None` unless `units_per_port` is in `1..=UNITS_PER_PORT_MAX`.
    pub const fn new(devices: u32, units_per_port: u32) -> Option<PortLayout> {
        if units_per_port == 0 || units_per_port > UNITS_PER_PORT_MAX {
            return None;
        }
        Some(PortLayout {
            devices,
            units_per_port,
        })
    }

    /// A port per device (what a farm has unless told otherwise).
    pub const fn one_per_port(devices: u32) -> PortLayout {
        PortLayout {
            devices,
            units_per_port: 1,
        }
    }

    pub const fn devices(self) -> u32 {
        self.devices
    }

    pub const fn units_per_port(self) -> u32 {
        self.units_per_port
    }

    pub const fn port_count(self) -> u32 {
        self.devices.div_ceil(self.units_per_port)
    }

    /// The port index `device` is served on; `None` past the last device.
    pub const fn port_index(self, device: u32) -> Option<u32> {
        if device >= self.devices {
            return None;
        }
        Some(device / self.units_per_port)
    }

    /// The unit id `device` answers to behind its port (1 with a port per
    /// device, where any unit id reaches it); `None` past the last device.
    pub const fn unit_id(self, device: u32) -> Option<u8> {
        if device >= self.devices {
            return None;
        }
        // At most UNITS_PER_PORT_MAX (247): fits a u8.
        Some((device % self.units_per_port + 1) as u8)
    }

    /// The devices served on `port_index`, as `first..first + count`
    /// (empty past the last port).
    pub const fn devices_of_port(self, port_index: u32) -> (u32, u32) {
        let first = port_index.saturating_mul(self.units_per_port);
        if first >= self.devices {
            return (self.devices, 0);
        }
        let count = self.devices - first;
        let count = if count < self.units_per_port {
            count
        } else {
            self.units_per_port
        };
        (first, count)
    }

    /// The device that answers a request for `unit` on `port_index`, if any.
    pub const fn device(self, port_index: u32, unit: u8) -> Option<u32> {
        let (first, count) = self.devices_of_port(port_index);
        match unit_index(self.units_per_port, unit) {
            Some(index) if (index as u32) < count => Some(first + index as u32),
            _ => None,
        }
    }
}

/// Which of a port's devices (by their order behind it) a request for
/// `unit` is for: the only one with a port per device, unit `u` as the
/// `u - 1`-th otherwise. The caller checks the port has that many.
pub(in crate::farm) const fn unit_index(units_per_port: u32, unit: u8) -> Option<usize> {
    if units_per_port <= 1 {
        return Some(0);
    }
    if unit == 0 || unit as u32 > units_per_port {
        return None;
    }
    Some(unit as usize - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_device_is_found_again_by_its_port_and_unit() {
        for (devices, units) in [(1, 1), (6, 1), (6, 3), (7, 3), (500, 247), (3, 247)] {
            let layout = PortLayout::new(devices, units).unwrap();
            let mut served = 0;
            for port in 0..layout.port_count() {
                let (first, count) = layout.devices_of_port(port);
                assert!(
                    (1..=units).contains(&count),
                    "{devices}/{units} port {port}"
                );
                for device in first..first + count {
                    assert_eq!(layout.port_index(device), Some(port));
                    let unit = layout.unit_id(device).unwrap();
                    assert_eq!(layout.device(port, unit), Some(device));
                    served += 1;
                }
            }
            assert_eq!(served, devices, "every device on exactly one port");
            assert_eq!(layout.port_index(devices), None);
            assert_eq!(layout.unit_id(devices), None);
            assert_eq!(layout.devices_of_port(layout.port_count()).1, 0);
        }
    }

    #[test]
    fn other_unit_ids_reach_no_device_unless_each_device_has_a_port() {
        let layout = PortLayout::new(7, 3).unwrap();
        assert_eq!(layout.device(1, 2), Some(4));
        for unit in [0u8, 4, 247, 255] {
            assert_eq!(layout.device(1, unit), None, "unit {unit}");
        }
        // The last port holds device 6 alone: units 2 and 3 are nobody.
        assert_eq!(layout.device(2, 1), Some(6));
        assert_eq!(layout.device(2, 2), None);
        assert_eq!(layout.device(3, 1), None);
        let own = PortLayout::one_per_port(4);
        for unit in [0u8, 1, 9, 255] {
            assert_eq!(own.device(2, unit), Some(2), "unit {unit} is echoed");
        }
        assert_eq!(own.device(4, 1), None);
    }

    #[test]
    fn units_per_port_is_bounded_by_the_modbus_unit_ids() {
        assert!(PortLayout::new(10, 0).is_none());
        assert!(PortLayout::new(10, 248).is_none());
        assert_eq!(PortLayout::new(10, 247).unwrap().port_count(), 1);
        assert_eq!(PortLayout::new(0, 3).unwrap().port_count(), 0);
    }
}
