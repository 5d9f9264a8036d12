//! Fault injection: which answer a request gets, decided by a per-device
//! seeded generator so that a run with the same seed and the same request
//! sequence per device injects the same faults. Protocol-neutral: each
//! protocol's codec turns a `Fault` into its own wrong answer (a Modbus
//! exception 04 or an S7 item error for `Exception`, its own length fields
//! for the malformed kinds).

use std::time::Duration;

/// Probabilities per answered request, each in 0..=1, summing to at most 1.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FaultRates {
    /// Close the connection instead of answering.
    pub drop_connection: f64,
    /// Hold this answer (and so everything after it on the connection) back
    /// for `FarmOptions::stall`.
    pub stall: f64,
    /// Answer with a device error instead of data: Modbus exception 04
    /// (server device failure); S7 item return code 0x01 (hardware fault)
    /// for one item of the request, the others answered; CIP general
    /// status 0x02 (resource unavailable) for the first read of a request.
    pub exception: f64,
    /// Answer with a frame whose lengths disagree with its data.
    pub malformed: f64,
}

impl FaultRates {
    pub fn validate(&self) -> Result<(), String> {
        let rates = [
            ("drop_connection", self.drop_connection),
            ("stall", self.stall),
            ("exception", self.exception),
            ("malformed", self.malformed),
        ];
        if let Some((name, rate)) = rates.iter().find(|(_, r)| !(0.0..=1.0).contains(r)) {
            return Err(format!("fault rate {name} is {rate}, not in 0..=1"));
        }
        let sum: f64 = rates.iter().map(|(_, r)| r).sum();
        if sum > 1.0 + 1e-9 {
            return Err(format!(
                "fault rates sum to {sum} (drop_connection {}, stall {}, exception {}, \
                 malformed {}): at most 1",
                self.drop_connection, self.stall, self.exception, self.malformed
            ));
        }
        Ok(())
    }

    pub fn any(&self) -> bool {
        self.drop_connection > 0.0
            || self.stall > 0.0
            || self.exception > 0.0
            || self.malformed > 0.0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    None,
    DropConnection,
    Stall,
    Exception,
    /// A length inside the answer says two more bytes than follow it (the
    /// Modbus byte count, the S7 header's data length); the frame length
    /// matches what is sent.
    MalformedCount,
    /// The frame length (MBAP, TPKT) is two less than the bytes sent: the
    /// last two bytes of the answer look like the start of the next frame.
    MalformedFrameLength,
    /// S7 only: header error 0x8500 (PDU size) instead of data, as a PLC
    /// whose PDU is smaller than it negotiated would answer.
    PduOverflow,
}

/// SplitMix64: tiny, fast, and good enough to draw fault decisions.
#[derive(Clone, Copy, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The rates as cumulative thresholds, with the generator of one device.
#[derive(Clone, Copy, Debug)]
pub struct FaultPlan {
    thresholds: [f64; 5],
    enabled: bool,
    pub stall: Duration,
}

impl FaultPlan {
    /// `pdu_overflow`: the S7 farm's rate of `Fault::PduOverflow` (0 for
    /// Modbus); with `rates` it sums to at most 1 (validated by the caller).
    pub fn new(rates: &FaultRates, pdu_overflow: f64, stall: Duration) -> Self {
        let mut acc = 0.0;
        let mut thresholds = [0.0; 5];
        let rates = [
            rates.drop_connection,
            rates.stall,
            rates.exception,
            rates.malformed,
            pdu_overflow,
        ];
        for (t, r) in thresholds.iter_mut().zip(rates) {
            acc += r;
            *t = acc;
        }
        FaultPlan {
            thresholds,
            enabled: acc > 0.0,
            stall,
        }
    }

    /// The fault for the next answered request of the device owning `rng`.
    pub fn draw(&self, rng: &mut SplitMix64) -> Fault {
        if !self.enabled {
            return Fault::None;
        }
        let x = rng.next_f64();
        let [drop, stall, exception, malformed, pdu_overflow] = self.thresholds;
        if x < drop {
            Fault::DropConnection
        } else if x < stall {
            Fault::Stall
        } else if x < exception {
            Fault::Exception
        } else if x < malformed {
            if rng.next_u64() & 1 == 0 {
                Fault::MalformedCount
            } else {
                Fault::MalformedFrameLength
            }
        } else if x < pdu_overflow {
            Fault::PduOverflow
        } else {
            Fault::None
        }
    }
}

/// Adds `delta` to the big-endian u16 at `at` of `answer` (wrapping; a
/// field past the end is left alone): how the codecs malform a length.
pub fn add_to_u16(answer: &mut [u8], at: usize, delta: i16) {
    if let Some(field) = answer.get_mut(at..at + 2) {
        let value = u16::from_be_bytes([field[0], field[1]]).wrapping_add_signed(delta);
        field.copy_from_slice(&value.to_be_bytes());
    }
}

/// [`add_to_u16`] for a little-endian field (EtherNet/IP).
pub fn add_to_u16_le(answer: &mut [u8], at: usize, delta: i16) {
    if let Some(field) = answer.get_mut(at..at + 2) {
        let value = u16::from_le_bytes([field[0], field[1]]).wrapping_add_signed(delta);
        field.copy_from_slice(&value.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_faults_and_rates_roughly_hold() {
        let plan = FaultPlan::new(
            &FaultRates {
                drop_connection: 0.1,
                stall: 0.1,
                exception: 0.2,
                malformed: 0.1,
            },
            0.1,
            Duration::ZERO,
        );
        let draw = |seed| {
            let mut rng = SplitMix64::new(seed);
            (0..10_000).map(|_| plan.draw(&mut rng)).collect::<Vec<_>>()
        };
        let a = draw(7);
        assert_eq!(a, draw(7));
        assert_ne!(a, draw(8));
        let count = |f: Fault| a.iter().filter(|&&x| x == f).count();
        assert!((800..1200).contains(&count(Fault::DropConnection)));
        assert!((1700..2300).contains(&count(Fault::Exception)));
        assert!((800..1200).contains(&count(Fault::PduOverflow)));
        assert!((3600..4400).contains(&count(Fault::None)));
        assert!(count(Fault::MalformedCount) > 300 && count(Fault::MalformedFrameLength) > 300);
    }

    #[test]
    fn validation() {
        assert!(FaultRates {
            stall: 1.5,
            ..Default::default()
        }
        .validate()
        .is_err());
        assert!(FaultRates {
            stall: 0.6,
            exception: 0.6,
            ..Default::default()
        }
        .validate()
        .is_err());
        assert!(FaultRates {
            malformed: 1.0,
            ..Default::default()
        }
        .validate()
        .is_ok());
    }
}
