//! The message router of a simulated Logix controller: the CIP services a
//! connected or unconnected request may name, answered into a caller's
//! `Writer` within the reply room the connection allows.
//!
//! | request | answer |
//! |---|---|
//! | Read Tag 0x4C of a farm symbol | type, data; 0x06 with the whole elements that fit when the rest does not |
//! | Read Tag Fragmented 0x52 | the same from a byte offset |
//! | Multiple Service Packet 0x0A | each embedded read answered as above; 0x1E overall when one failed |
//! | Get Instance Attribute List 0x55, Symbol class | attributes 1 2 3 5 6 7 8 10 of each symbol from the instance asked; 0x06 when more follow |
//! | Get Attributes All 0x01, Identity / program name | what pycomm3 and pylogix ask before reading |
//! | Get Attribute List 0x03 / Read 0x4C of the STRING template | the Logix STRING's definition |
//! | a name the table has not | 0x05 path destination unknown |
//! | `Program:Main.` scope, `Motor_N.Member`, `TGrid[r,c]` (see `table`) | read as above |
//! | a path of other segments, or indices that do not fit the tag | 0x04 path segment error |
//! | elements past the end of the tag | 0xFF, extended 0x2105 |
//! | anything else | 0x08 service not supported |

use crate::protocol::enip::cip::{
    self, Request, GET_INSTANCE_ATTRIBUTE_LIST, MESSAGE_ROUTER_PATH, MULTIPLE_SERVICE_PACKET,
    READ_TAG, REPLY_FLAG, SERVICE_0X52, STATUS_EMBEDDED_SERVICE_ERROR, STATUS_PARTIAL_TRANSFER,
    STATUS_PATH_DESTINATION_UNKNOWN, STATUS_PATH_SEGMENT_ERROR, STATUS_SERVICE_NOT_SUPPORTED,
    STATUS_SUCCESS, SYMBOL_CLASS,
};
use crate::protocol::enip::limits::MSP_SERVICES_MAX;
use crate::protocol::enip::symbols::{GET_ATTRIBUTE_LIST, TEMPLATE_CLASS};
use crate::protocol::enip::wire::{Reader, Writer};
use crate::protocol::enip::Field;

use super::table::{self, Symbol};
use super::template;

/// General status: a resource the service needs is unavailable (the
/// farm's injected device error).
pub const STATUS_RESOURCE_UNAVAILABLE: u8 = 0x02;
/// General status: the request's data is too short, or too long.
const STATUS_NOT_ENOUGH_DATA: u8 = 0x13;
const STATUS_TOO_MUCH_DATA: u8 = 0x15;
/// General status: an attribute the object has not.
const STATUS_ATTRIBUTE_NOT_SUPPORTED: u8 = 0x14;
/// General status 0xFF with this extended status: elements past the end of
/// the tag (what a Logix controller answers).
const STATUS_GENERAL: u8 = 0xFF;
const EXTENDED_BEYOND_END: u16 = 0x2105;
/// Get Attributes All.
const GET_ATTRIBUTES_ALL: u8 = 0x01;
const IDENTITY_CLASS: u8 = 0x01;
/// Where pycomm3 asks for the controller's program name.
const PROGRAM_NAME_CLASS: u8 = 0x64;
/// Attribute ids a tag-list request may name at most.
const ATTRIBUTES_MAX: usize = 16;

/// What a request is answered with: the device it reads and the counter
/// of this answer.
#[derive(Clone, Copy, Debug)]
pub struct Answer {
    pub device: u32,
    pub counter: u8,
    /// Answer the first read with status 0x02 (the injected device error).
    pub fail_first: bool,
}

/// Whether a request reads tag data (and so takes a counter and a fault).
pub fn reads_data(request: &Request<'_>) -> bool {
    matches!(request.service, READ_TAG | MULTIPLE_SERVICE_PACKET)
        || (request.service == SERVICE_0X52
            && !request.path.starts_with(&cip::CONNECTION_MANAGER_PATH))
}

/// A reply's header: the service with the reply flag, the general status
/// and at most one word of extended status.
pub(super) fn reply_head(w: &mut Writer<'_>, service: u8, general: u8, extended: Option<u16>) {
    w.u8(service | REPLY_FLAG);
    w.u8(0);
    w.u8(general);
    match extended {
        Some(extended) => {
            w.u8(1);
            w.u16(extended);
        }
        None => w.u8(0),
    }
}

/// An error reply: the service's header with `general` (and 0x2105 for
/// 0xFF) and no data.
fn refuse(w: &mut Writer<'_>, service: u8, general: u8) -> u8 {
    let extended = (general == STATUS_GENERAL).then_some(EXTENDED_BEYOND_END);
    reply_head(w, service, general, extended);
    general
}

/// Answers `request` into `w`, the reply at most `room` bytes.
pub fn route(w: &mut Writer<'_>, request: &Request<'_>, room: usize, answer: &mut Answer) {
    match request.service {
        READ_TAG if class_of(request.path) == Some(TEMPLATE_CLASS) => template::read(w, request),
        READ_TAG | SERVICE_0X52 => {
            read(w, request, room, answer);
        }
        MULTIPLE_SERVICE_PACKET if request.path == MESSAGE_ROUTER_PATH => {
            multiple(w, request, room, answer)
        }
        GET_INSTANCE_ATTRIBUTE_LIST => symbol_list(w, request, room),
        GET_ATTRIBUTES_ALL if class_of(request.path) == Some(IDENTITY_CLASS) => {
            reply_head(w, request.service, STATUS_SUCCESS, None);
            write_identity(w);
        }
        GET_ATTRIBUTES_ALL if class_of(request.path) == Some(PROGRAM_NAME_CLASS) => {
            reply_head(w, request.service, STATUS_SUCCESS, None);
            w.u16(PROGRAM_NAME.len() as u16);
            w.bytes(PROGRAM_NAME);
        }
        GET_ATTRIBUTE_LIST if class_of(request.path) == Some(TEMPLATE_CLASS) => {
            template::attributes(w, request)
        }
        service => {
            refuse(w, service, STATUS_SERVICE_NOT_SUPPORTED);
        }
    }
}

/// The class a logical path starts with (`0x20 class`).
fn class_of(path: &[u8]) -> Option<u8> {
    match path {
        [0x20, class, ..] => Some(*class),
        _ => None,
    }
}

pub const PRODUCT_NAME: &[u8] = b"1756-L83E/B millrace farm";
const PROGRAM_NAME: &[u8] = b"MillraceFarm";
/// Rockwell's vendor id; a programmable logic controller; a revision
/// below 21 so that clients read by name, not by instance id.
const VENDOR_ROCKWELL: u16 = 1;
const DEVICE_TYPE_PLC: u16 = 0x0E;
const PRODUCT_CODE: u16 = 166;
const REVISION: [u8; 2] = [20, 11];
const SERIAL: u32 = 0x4D52_0001;

/// The Identity object's attributes (Get Attributes All, and ListIdentity
/// after the socket address).
pub fn write_identity(w: &mut Writer<'_>) {
    w.u16(VENDOR_ROCKWELL);
    w.u16(DEVICE_TYPE_PLC);
    w.u16(PRODUCT_CODE);
    w.bytes(&REVISION);
    w.u16(0x0060); // status: run mode
    w.u32(SERIAL);
    w.u8(PRODUCT_NAME.len() as u8);
    w.bytes(PRODUCT_NAME);
}

/// The tag and element a Read Tag path names, or the general status that
/// refuses it: one to `PATH_NAMES_MAX` symbolic segments (a program scope,
/// a tag, a member), then as many element segments as the tag has
/// dimensions (or none: element 0).
fn target(path: &[u8]) -> Result<(Symbol, u32), u8> {
    let mut r = Reader::new(path);
    let f = Field::ReplyHeader;
    let bad = |_| STATUS_PATH_SEGMENT_ERROR;
    let mut names: [&[u8]; table::PATH_NAMES_MAX] = [&[]; table::PATH_NAMES_MAX];
    let mut name_count = 0;
    let mut indices = [0u32; 3];
    let mut index_count = 0;
    // Each round takes a segment (two bytes at least): bounded by the path.
    while r.remaining() > 0 {
        match r.u8(f).map_err(bad)? {
            0x91 if index_count == 0 => {
                let length = r.u8(f).map_err(bad)?;
                let name = r.take(usize::from(length), f).map_err(bad)?;
                if length % 2 == 1 {
                    r.u8(f).map_err(bad)?;
                }
                // More names than any farm path has: no such tag.
                let slot = names
                    .get_mut(name_count)
                    .ok_or(STATUS_PATH_DESTINATION_UNKNOWN)?;
                *slot = name;
                name_count += 1;
            }
            segment @ 0x28..=0x2A if name_count > 0 => {
                let index = match segment {
                    0x28 => u32::from(r.u8(f).map_err(bad)?),
                    0x29 => {
                        r.u8(f).map_err(bad)?;
                        u32::from(r.u16(f).map_err(bad)?)
                    }
                    _ => {
                        r.u8(f).map_err(bad)?;
                        r.u32(f).map_err(bad)?
                    }
                };
                let slot = indices
                    .get_mut(index_count)
                    .ok_or(STATUS_PATH_SEGMENT_ERROR)?;
                *slot = index;
                index_count += 1;
            }
            _ => return Err(STATUS_PATH_SEGMENT_ERROR),
        }
    }
    let names = names.get(..name_count).unwrap_or_default();
    let symbol = table::resolve(names).ok_or(STATUS_PATH_DESTINATION_UNKNOWN)?;
    let indices = indices.get(..index_count).unwrap_or_default();
    let element = table::element_of(&symbol, indices).ok_or(STATUS_PATH_SEGMENT_ERROR)?;
    Ok((symbol, element))
}

/// What a read asks for: elements and (fragmented) a byte offset.
fn read_request(request: &Request<'_>) -> Result<(u16, u32), u8> {
    let mut r = Reader::new(request.data);
    let f = Field::TagData;
    let count = r.u16(f).map_err(|_| STATUS_NOT_ENOUGH_DATA)?;
    let offset = if request.service == SERVICE_0X52 {
        r.u32(f).map_err(|_| STATUS_NOT_ENOUGH_DATA)?
    } else {
        0
    };
    r.finish(f).map_err(|_| STATUS_TOO_MUCH_DATA)?;
    Ok((count, offset))
}

/// Read Tag or Read Tag Fragmented: as many whole elements from the
/// offset as fit `room`, 0x06 when some are left. Returns the general
/// status it answered with.
fn read(w: &mut Writer<'_>, request: &Request<'_>, room: usize, answer: &mut Answer) -> u8 {
    let service = request.service;
    if std::mem::take(&mut answer.fail_first) {
        return refuse(w, service, STATUS_RESOURCE_UNAVAILABLE);
    }
    let planned = target(request.path).and_then(|(symbol, element)| {
        let (count, offset) = read_request(request)?;
        let end = u64::from(element) + u64::from(count);
        let total = usize::from(count) * symbol.element_bytes();
        if count == 0 || end > u64::from(symbol.element_count()) || offset as usize > total {
            return Err(STATUS_GENERAL);
        }
        Ok((symbol, element, total, offset as usize))
    });
    let (symbol, element, total, offset) = match planned {
        Ok(p) => p,
        Err(general) => return refuse(w, service, general),
    };
    let (code, handle) = symbol.reply_type();
    let head = 4 + 2 + if handle.is_some() { 2 } else { 0 };
    let width = symbol.element_bytes();
    let available = room.saturating_sub(head);
    let left = total - offset;
    let (size, general) = if left <= available {
        (left, STATUS_SUCCESS)
    } else {
        (available - available % width, STATUS_PARTIAL_TRANSFER)
    };
    reply_head(w, service, general, None);
    w.u16(code);
    if let Some(handle) = handle {
        w.u16(handle);
    }
    write_data(w, &symbol, element, offset, size, answer);
    general
}

/// Bytes `offset..offset + size` of the elements from `first` on.
fn write_data(
    w: &mut Writer<'_>,
    symbol: &Symbol,
    first: u32,
    offset: usize,
    size: usize,
    answer: &Answer,
) {
    let width = symbol.element_bytes();
    let mut scratch = [0u8; crate::protocol::enip::limits::STRING_STRUCT_BYTES];
    let mut at = offset;
    while at < offset + size {
        let element = first + (at / width) as u32;
        let within = at % width;
        let n = table::write_element(answer.device, symbol, element, answer.counter, &mut scratch);
        let take = (n - within).min(offset + size - at);
        w.bytes(scratch.get(within..within + take).unwrap_or_default());
        at += take.max(1);
    }
}

/// Multiple Service Packet: each embedded request answered in the room
/// the replies before it left; 0x1E overall when one was not a success.
fn multiple(w: &mut Writer<'_>, request: &Request<'_>, room: usize, answer: &mut Answer) {
    let start = w.len();
    let count = Reader::new(request.data).u16(Field::MspCount).unwrap_or(0);
    let packet = match cip::MspReplies::parse(request.data, count) {
        Ok(packet) if (1..=MSP_SERVICES_MAX).contains(&count) => packet,
        _ => {
            refuse(w, request.service, STATUS_NOT_ENOUGH_DATA);
            return;
        }
    };
    reply_head(w, request.service, STATUS_SUCCESS, None);
    let status_at = start + 2;
    let data_start = w.len();
    w.u16(count);
    let table_at = w.len();
    for _ in 0..count {
        w.u16(0);
    }
    let mut failed = false;
    for index in 0..count {
        let offset = w.len() - data_start;
        w.patch_u16(table_at + 2 * usize::from(index), offset as u16);
        let left = room.saturating_sub(w.len() - start);
        let general = match cip::parse_request(packet.get(index)) {
            Ok(embedded) if matches!(embedded.service, READ_TAG | SERVICE_0X52) => {
                read(w, &embedded, left, answer)
            }
            Ok(embedded) => refuse(w, embedded.service, STATUS_SERVICE_NOT_SUPPORTED),
            Err(_) => refuse(w, 0, STATUS_NOT_ENOUGH_DATA),
        };
        failed |= general != STATUS_SUCCESS;
    }
    if failed {
        w.patch_u8(status_at, STATUS_EMBEDDED_SERVICE_ERROR);
    }
}

/// The instance a Symbol class path starts the list at, and whether it is
/// program-scoped.
fn list_start(path: &[u8]) -> Option<(u32, bool)> {
    let mut r = Reader::new(path);
    let f = Field::SymbolInstance;
    let mut program = false;
    let mut segment = r.u8(f).ok()?;
    if segment == 0x91 {
        let length = r.u8(f).ok()?;
        r.take(usize::from(length) + usize::from(length % 2), f)
            .ok()?;
        program = true;
        segment = r.u8(f).ok()?;
    }
    if segment != 0x20 || r.u8(f).ok()? != SYMBOL_CLASS {
        return None;
    }
    let start = match r.u8(f).ok()? {
        0x24 => u32::from(r.u8(f).ok()?),
        0x25 => {
            r.u8(f).ok()?;
            u32::from(r.u16(f).ok()?)
        }
        0x26 => {
            r.u8(f).ok()?;
            r.u32(f).ok()?
        }
        _ => return None,
    };
    r.finish(f).ok()?;
    Some((start, program))
}

/// Bytes attribute `id` of `symbol` takes; `None` for one it has not.
fn attribute_bytes(id: u16, name_bytes: usize) -> Option<usize> {
    Some(match id {
        1 => 2 + name_bytes,
        2 | 7 => 2,
        3 | 5 | 6 => 4,
        8 => 12,
        10 => 1,
        _ => return None,
    })
}

fn write_attribute(w: &mut Writer<'_>, id: u16, symbol: &Symbol, name: &[u8]) {
    match id {
        1 => {
            w.u16(name.len() as u16);
            w.bytes(name);
        }
        2 => w.u16(symbol.symbol_type()),
        7 => w.u16(symbol.element_bytes() as u16),
        3 | 5 | 6 => w.u32(0),
        8 => {
            let count = if symbol.shape == table::Shape::Scalar {
                0
            } else {
                symbol.element_count()
            };
            w.u32(count);
            w.u32(0);
            w.u32(0);
        }
        _ => w.u8(0), // 10: external access read/write
    }
}

/// Get Instance Attribute List on the Symbol class: the controller-scope
/// symbols from the instance asked for, as many as fit (0x06 if more
/// follow); a program scope holds none.
fn symbol_list(w: &mut Writer<'_>, request: &Request<'_>, room: usize) {
    let service = request.service;
    let Some((start, program)) = list_start(request.path) else {
        refuse(w, service, STATUS_PATH_SEGMENT_ERROR);
        return;
    };
    let mut r = Reader::new(request.data);
    let mut ids = [0u16; ATTRIBUTES_MAX];
    let count = usize::from(r.u16(Field::TagData).unwrap_or(0));
    let Some(ids) = ids.get_mut(..count).filter(|ids| !ids.is_empty()) else {
        refuse(w, service, STATUS_NOT_ENOUGH_DATA);
        return;
    };
    for id in ids.iter_mut() {
        match r.u16(Field::TagData) {
            Ok(v) if attribute_bytes(v, 0).is_some() => *id = v,
            Ok(_) => {
                refuse(w, service, STATUS_ATTRIBUTE_NOT_SUPPORTED);
                return;
            }
            Err(_) => {
                refuse(w, service, STATUS_NOT_ENOUGH_DATA);
                return;
            }
        }
    }
    let head_at = w.len();
    reply_head(w, service, STATUS_SUCCESS, None);
    let first = if program {
        table::SYMBOL_COUNT + 1
    } else {
        start.max(1)
    };
    for instance in first..=table::SYMBOL_COUNT {
        let Some(symbol) = table::symbol_at(instance) else {
            continue;
        };
        let mut name = [0u8; 16];
        let n = symbol.write_name(&mut name);
        let name = name.get(..n).unwrap_or_default();
        let entry: usize = 4 + ids
            .iter()
            .filter_map(|&id| attribute_bytes(id, n))
            .sum::<usize>();
        if w.len() - head_at + entry > room {
            w.patch_u8(head_at + 2, STATUS_PARTIAL_TRANSFER);
            return;
        }
        w.u32(instance);
        for &id in ids.iter() {
            write_attribute(w, id, &symbol, name);
        }
    }
}
