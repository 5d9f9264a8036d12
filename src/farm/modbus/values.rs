//! What the simulated devices hold: values a receiver can check one by one.
//!
//! A register (holding or input) carries the device's request counter in its
//! high byte and a check byte in its low byte:
//!
//! ```text
//! value = counter_lo8 << 8 | check8(area, device, address, counter_lo8)
//! ```
//!
//! The counter advances by one for every read the device answers, so values
//! change from poll to poll, every register of one response carries the same
//! counter, and any single value can be verified knowing only its device,
//! area and address ([`verify_register`], [`verify`]). A wrong device, area,
//! address or a flipped byte passes with probability 1/256 per value.
//!
//! A coil or discrete input is one bit and cannot carry a counter: its value
//! is a fixed pseudo-random function of (area, device, address)
//! ([`bit_value`], [`verify_bit`]).

use crate::config::Area;

/// The high byte of a register value: the device's counter when it answered.
pub const fn counter_of(value: u16) -> u8 {
    (value >> 8) as u8
}

/// MurmurHash3's 64-bit finaliser: a bijective, well-mixing step.
const fn fmix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

const fn area_code(area: Area) -> u64 {
    area.function_code() as u64
}

/// Per-response part of the check: one full mix per (area, device, counter),
/// so a 125-register response costs one mix plus one multiply per register.
pub const fn response_seed(area: Area, device: u32, counter: u8) -> u64 {
    fmix64((device as u64) << 32 | area_code(area) << 8 | counter as u64)
}

/// The check byte of `address` under a `response_seed`.
pub const fn check8_seeded(seed: u64, address: u16) -> u8 {
    let x = seed ^ (address as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (x.wrapping_mul(0xd6e8_feb8_6659_fd93) >> 56) as u8
}

pub const fn check8(area: Area, device: u32, address: u16, counter: u8) -> u8 {
    check8_seeded(response_seed(area, device, counter), address)
}

/// The register at `address` of `device` when the device's counter is `counter`.
pub const fn register_value(area: Area, device: u32, address: u16, counter: u8) -> u16 {
    (counter as u16) << 8 | check8(area, device, address, counter) as u16
}

/// The coil or discrete input at `address` of `device` (always the same).
pub const fn bit_value(area: Area, device: u32, address: u16) -> bool {
    let x = fmix64((device as u64) << 32 | area_code(area) << 24 | (address as u64) << 8 | 0x5a);
    x >> 63 == 1
}

/// Whether `value`, read from holding register `address` of `device`, is one
/// the farm can have served. The default tag type of emitted configs.
pub const fn verify_register(device: u32, address: u16, value: u16) -> bool {
    verify(Area::Holding, device, address, value)
}

/// Whether `value`, read from input register `address` of `device`, is one
/// the farm can have served.
pub const fn verify_input_register(device: u32, address: u16, value: u16) -> bool {
    verify(Area::Input, device, address, value)
}

/// Whether the bit read from coil or discrete `address` of `device` is right.
pub const fn verify_bit(area: Area, device: u32, address: u16, value: bool) -> bool {
    area.is_bit_area() && bit_value(area, device, address) == value
}

/// Any area: registers as read (`u16`), bits as 0 or 1.
pub const fn verify(area: Area, device: u32, address: u16, raw: u16) -> bool {
    if area.is_bit_area() {
        raw <= 1 && verify_bit(area, device, address, raw == 1)
    } else {
        let counter = counter_of(raw);
        raw & 0xff == check8(area, device, address, counter) as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_values_verify_and_neighbours_mostly_do_not() {
        let mut false_accepts = 0u32;
        let mut checked = 0u32;
        for device in [0u32, 1, 2, 1999, u32::MAX] {
            for address in [0u16, 1, 124, 125, 65535] {
                for counter in [0u8, 1, 200, 255] {
                    let v = register_value(Area::Holding, device, address, counter);
                    assert!(verify_register(device, address, v));
                    assert_eq!(counter_of(v), counter);
                    for wrong in [
                        verify_register(device ^ 1, address, v),
                        verify_register(device, address ^ 1, v),
                        verify_input_register(device, address, v),
                        verify_register(device, address, v ^ 0x0001),
                    ] {
                        false_accepts += wrong as u32;
                        checked += 1;
                    }
                }
            }
        }
        // 1/256 expected: about 1.6 of 400; far more means the check is weak.
        assert!(
            false_accepts <= 8,
            "{false_accepts} of {checked} wrong values accepted"
        );
    }

    #[test]
    fn bits_are_fixed_and_mixed() {
        let ones = (0..1000u16)
            .filter(|&a| bit_value(Area::Coil, 3, a))
            .count();
        assert!((400..600).contains(&ones), "{ones} ones of 1000");
        assert!(verify(Area::Coil, 3, 7, bit_value(Area::Coil, 3, 7) as u16));
        assert!(!verify(Area::Coil, 3, 7, 2));
        assert!(!verify_bit(Area::Holding, 3, 7, true));
        assert!(!verify_bit(Area::Holding, 3, 7, false));
    }
}
