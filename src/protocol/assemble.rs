//! Reassembly of frames from a byte stream, shared by the Modbus MBAP and
//! RTU framers and the S7 TPKT framer. A frame that lies whole in the
//! caller's buffer is returned as a slice of it (no copy); only a frame that
//! straddles two buffers is copied, into a fixed buffer of `N` bytes owned
//! by the connection.

/// What a prefix of the stream says about the frame that starts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Measure {
    /// The frame's length is not known until this many bytes are present.
    AtLeast(usize),
    /// The frame is exactly this many bytes (already validated against `N`).
    Total(usize),
}

/// Stream reassembly with a fixed buffer for the one frame that straddles.
#[derive(Clone, Debug)]
pub(crate) struct Assembler<const N: usize> {
    partial: [u8; N],
    partial_len: usize,
}

impl<const N: usize> Assembler<N> {
    pub(crate) const fn new() -> Self {
        Assembler {
            partial: [0; N],
            partial_len: 0,
        }
    }

    pub(crate) fn clear(&mut self) {
        self.partial_len = 0;
    }

    /// Bytes of an incomplete frame held from earlier input.
    pub(crate) const fn pending_len(&self) -> usize {
        self.partial_len
    }

    /// The next whole frame, consuming its bytes from `input`; `None` once
    /// `input` is used up without completing a frame (the tail is kept).
    ///
    /// `measure` must only read the prefix it is given, ask for more bytes
    /// than that prefix holds when it returns `AtLeast`, and never return a
    /// length above `N`.
    pub(crate) fn next<'r, 'f: 'r, 'i: 'r, E>(
        &'f mut self,
        input: &mut &'i [u8],
        measure: impl Fn(&[u8]) -> Result<Measure, E>,
    ) -> Result<Option<&'r [u8]>, E> {
        if self.partial_len == 0 {
            if let Measure::Total(total) = measure(input)? {
                assert!(total <= N);
                if let Some((frame, rest)) = input.split_at_checked(total) {
                    *input = rest;
                    return Ok(Some(frame));
                }
            }
        }
        // Each round either completes the frame, runs out of input, or moves
        // at least one byte into `partial` (at most N rounds in all).
        for _ in 0..=N {
            let held = self.partial.get(..self.partial_len).unwrap_or_default();
            let want = match measure(held)? {
                Measure::Total(total) if total <= self.partial_len => {
                    assert!(total == self.partial_len);
                    self.partial_len = 0;
                    return Ok(self.partial.get(..total));
                }
                Measure::Total(want) | Measure::AtLeast(want) => want,
            };
            assert!(want > self.partial_len && want <= N);
            if input.is_empty() {
                return Ok(None);
            }
            let take = (want - self.partial_len).min(input.len());
            let (head, rest) = input.split_at(take);
            let target = self
                .partial
                .get_mut(self.partial_len..self.partial_len + take);
            if let Some(target) = target {
                target.copy_from_slice(head);
            }
            self.partial_len += take;
            *input = rest;
        }
        unreachable!("reassembly made no progress in {N} rounds");
    }
}
