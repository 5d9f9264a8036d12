//! One Modbus request at the front of a connection's input, answered into
//! its output: the step the shared connection pump calls per request.

use super::adu::{self, Answer, EXCEPTION_DEVICE_FAILURE};
use crate::farm::conn::{Behaviour, Device, Served};
use crate::farm::counters::Tally;
use crate::farm::fault::Fault;

/// Answers the request at the front of `pending` (if it is whole) by
/// appending one ADU to `out`.
pub(in crate::farm) fn serve(
    pending: &[u8],
    out: &mut Vec<u8>,
    device: &mut Device,
    how: &Behaviour,
    tally: &mut Tally,
) -> Served {
    let request = match adu::next_request(pending) {
        Ok(Some(request)) => request,
        Ok(None) => return Served::NeedMore,
        Err(_) => {
            tally.framing_errors += 1;
            return Served::Close;
        }
    };
    tally.requests += 1;
    let size_before = out.len();
    let mut fault = Fault::None;
    let memory = &how.modbus;
    match adu::classify(
        request.function,
        request.data,
        memory.register_count,
        memory.bit_count,
    ) {
        Answer::Exception(code) => {
            tally.protocol_exceptions += 1;
            adu::write_exception(
                out,
                request.transaction,
                request.unit,
                request.function,
                code,
            );
        }
        Answer::Read {
            area,
            start,
            quantity,
        } => {
            fault = how.modbus_plan.draw(&mut device.rng);
            tally.count_fault(fault);
            match fault {
                Fault::DropConnection => return Served::Close,
                Fault::Exception => adu::write_exception(
                    out,
                    request.transaction,
                    request.unit,
                    request.function,
                    EXCEPTION_DEVICE_FAILURE,
                ),
                _ => {
                    let counter = device.counter as u8;
                    device.counter = device.counter.wrapping_add(1);
                    tally.data_responses += 1;
                    let what = (area, start, quantity);
                    adu::write_read_response(out, &request, what, device.index, counter);
                }
            }
        }
    }
    if let Some(answer) = out.get_mut(size_before..) {
        adu::malform(answer, fault);
    }
    Served::Answered {
        consumed: request.adu_size,
        fault,
        last: false,
    }
}
