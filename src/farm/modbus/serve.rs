//! One Modbus request at the front of a connection's input, answered into
//! its output: the step the shared connection pump calls per request. The
//! request's unit id picks which of the port's devices answers (the only
//! one with a port per device); each keeps its own counter and fault
//! generator, so it answers exactly as it would on a port of its own.

use super::adu::{self, Answer, EXCEPTION_DEVICE_FAILURE, EXCEPTION_GATEWAY_TARGET_FAILED};
use crate::farm::conn::{Behaviour, Device, Served};
use crate::farm::counters::Tally;
use crate::farm::fault::Fault;
use crate::farm::ports::unit_index;

/// Answers the request at the front of `pending` (if it is whole) by
/// appending one ADU to `out`. `units`: the devices behind the port, in
/// unit id order.
pub(in crate::farm) fn serve(
    pending: &[u8],
    out: &mut Vec<u8>,
    units: &mut [Device],
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
    let Some(device) = unit_index(how.units_per_port, request.unit).and_then(|i| units.get_mut(i))
    else {
        return refuse_unit(out, &request, tally);
    };
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

/// A request for a unit id no device behind the port answers to: exception
/// 0x0B, as a gateway whose target does not respond. No device's counter or
/// fault generator moves.
fn refuse_unit(out: &mut Vec<u8>, request: &adu::Request<'_>, tally: &mut Tally) -> Served {
    tally.unknown_unit_exceptions += 1;
    adu::write_exception(
        out,
        request.transaction,
        request.unit,
        request.function,
        EXCEPTION_GATEWAY_TARGET_FAILED,
    );
    Served::Answered {
        consumed: request.adu_size,
        fault: Fault::None,
        last: false,
    }
}
