//! Modbus TCP (and RTU over TCP): read requests, MBAP framing, response
//! decoding into samples, and the request planner.

mod crc;
mod error;
mod limits;
mod planner;
mod request;

pub use crc::crc16;
pub use error::{ModbusError, RequestError};
pub use limits::*;
pub use planner::{plan_device, DevicePlan, PlannedRequest, PlannedTag};
pub use request::{ReadFunction, ReadRequest};

#[cfg(test)]
mod planner_tests;
