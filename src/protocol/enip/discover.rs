//! `millrace discover` for EtherNet/IP, sans-IO: the requests that list a
//! Logix controller's tags and the state between them. The driver
//! (app/discover.rs) owns the socket and the clock; this owns what to ask
//! next and what the answers mean. One request is outstanding at a time:
//! a tag list is asked once, at commissioning, not polled.
//!
//! ```text
//! RegisterSession
//! SendRRData [Unconnected Send along `path`] Get Instance Attribute List 0x55
//!     Symbol class 0x6B from instance N: name, type, dimensions; status 0x06:
//!     more follow, ask again from the last instance seen
//!   ... the same scoped to each program (`Program:Name` symbols)
//! SendRRData [...] Get Attribute List 0x03 on each structure's template
//!     (class 0x6C): its handle and size tell a Logix STRING from a UDT
//! UnregisterSession
//! ```
//!
//! A page is asked for from the last instance of the one before, and what
//! was seen is dropped: pycomm3 asks from the last + 1, which a Logix
//! controller answers from that instance on, while cm-ethernetip 0.1.0
//! answers the instances above it (and so skips one per page). Asking from
//! the last seen works with both.
//!
//! Hidden symbols are kept out as pycomm3's `_isolate_user_tags` does:
//! names starting `__`, the system bit (12) of the type, and names with a
//! `:` other than `Program:` (routines, tasks, maps, connections, module
//! I/O).

use std::fmt;

use crate::config::{CipType, RouteHop};

use super::cip::{
    self, parse_reply, Reply, GET_INSTANCE_ATTRIBUTE_LIST, SERVICE_0X52, STATUS_SUCCESS,
};
use super::encap::{self, Frame};
use super::error::EnipError;
use super::symbols::{self, SymbolPage, GET_ATTRIBUTE_LIST};
use super::wire::Writer;

/// Symbols kept at most: memory the controller's answers fill (a large
/// ControlLogix holds tens of thousands of tags).
pub const SYMBOLS_MAX: usize = 200_000;
/// Pages asked for at most, over every scope: the loop's bound (each page
/// holds at least one new symbol, or discovery stops).
pub const PAGES_MAX: u32 = 100_000;
/// Programs listed at most (Logix allows 1,000 per task).
pub const PROGRAMS_MAX: usize = 4_000;
/// Template ids are 12 bits.
pub const TEMPLATES_MAX: usize = 4_096;
/// The longest request this writes: an encapsulation header, the common
/// packet, an Unconnected Send with the longest route, a scoped tag list.
pub const REQUEST_BYTES_MAX: usize = 1_024;

const CONTEXT: [u8; 8] = *b"discover";

/// What a request of discovery asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Asked {
    RegisterSession,
    TagList,
    Template,
}

impl Asked {
    pub const fn name(self) -> &'static str {
        match self {
            Asked::RegisterSession => "RegisterSession",
            Asked::TagList => "Get Instance Attribute List (0x55) on the Symbol class (0x6B)",
            Asked::Template => "Get Attribute List (0x03) on the Template class (0x6C)",
        }
    }
}

/// Why discovery stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiscoverError {
    /// Bytes that break the protocol.
    Wire { asked: Asked, error: EnipError },
    /// The controller refused the controller-scope tag list.
    Refused {
        asked: Asked,
        general: u8,
        extended: u16,
    },
    /// A router on `path` refused to carry the request.
    RouteRefused { general: u8, extended: u16 },
    /// A page said more follow but held nothing new.
    NoProgress { instance: u32 },
    /// More of something than this client keeps.
    TooMany { what: &'static str, max: usize },
}

const NO_TAG_LIST: &str = ": it cannot list its tags (not a Logix controller, or a \
                           simulator without the tag list); write the tags by hand";

fn status_words(general: u8, extended: u16) -> &'static str {
    match (general, extended) {
        (0x01, 0x0204) => "the target did not answer in time",
        (0x01, 0x0311) => "invalid port in the route",
        (0x01, 0x0312) => "invalid link address in the route",
        (0x01, _) => "connection failure",
        (0x04, _) => "path segment error",
        (0x05, _) => "path destination unknown",
        (0x08, _) => "service not supported",
        (0x16, _) => "object does not exist",
        _ => "CIP error",
    }
}

impl fmt::Display for DiscoverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            // An encapsulation status is the device's refusal, not bad bytes.
            DiscoverError::Wire {
                asked,
                error: error @ EnipError::EncapStatus { .. },
            } => {
                write!(f, "the device refused {}: {error}", asked.name())?;
                if asked == Asked::TagList {
                    f.write_str(NO_TAG_LIST)?;
                }
                Ok(())
            }
            DiscoverError::Wire { asked, error } => {
                write!(f, "the answer to {} is malformed: {error}", asked.name())
            }
            DiscoverError::Refused {
                asked,
                general,
                extended,
            } => {
                write!(
                    f,
                    "the controller refused {} with CIP status {general:#04x} ({}), extended \
                     {extended:#06x}",
                    asked.name(),
                    status_words(general, extended)
                )?;
                if asked == Asked::TagList && matches!(general, 0x05 | 0x08 | 0x16) {
                    f.write_str(NO_TAG_LIST)?;
                }
                Ok(())
            }
            DiscoverError::RouteRefused { general, extended } => write!(
                f,
                "a module on the route refused to carry the request (CIP status {general:#04x} \
                 {}, extended {extended:#06x}): check `--path`",
                status_words(general, extended)
            ),
            DiscoverError::NoProgress { instance } => write!(
                f,
                "the controller said more tags follow instance {instance} but sent none past it"
            ),
            DiscoverError::TooMany { what, max } => {
                write!(f, "the controller lists more than {max} {what}")
            }
        }
    }
}

impl std::error::Error for DiscoverError {}

/// One symbol as listed, owned (discovery is a one-off, not a hot path).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Discovered {
    pub instance: u32,
    /// What a Read Tag names it by: `Program:Name.Tag` for a program's.
    pub address: String,
    pub symbol_type: u16,
    pub dimensions: [u32; 3],
}

/// What millrace can make of a symbol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A name or type bit that marks it the controller's own.
    Hidden,
    /// An atomic type: `count` samples (elements; bits of a BOOL array).
    Atomic { data_type: CipType, count: u64 },
    /// The Logix STRING structure (`count` of them).
    String { count: u64 },
    /// Another structure: not readable whole. `layout` is its handle and
    /// size when the template answered.
    Structure {
        template: u16,
        layout: Option<(u16, u32)>,
    },
    /// An atomic type millrace does not read (its type code).
    Unsupported { type_code: u16 },
}

impl Discovered {
    pub const fn is_struct(&self) -> bool {
        self.symbol_type & 0x8000 != 0
    }

    /// The controller's own: `__` names, the system bit, `X:Y` names.
    pub fn is_hidden(&self) -> bool {
        let tail = self.address.strip_prefix("Program:").map_or_else(
            || self.address.as_str(),
            |rest| rest.split_once('.').map_or("", |(_, tag)| tag),
        );
        self.symbol_type & 0x1000 != 0
            || tail.starts_with("__")
            || tail.contains(':')
            || (!self.address.starts_with("Program:") && self.address.contains(':'))
    }

    /// Elements of the array, 1 for a scalar.
    pub fn elements(&self) -> u64 {
        let dims = usize::from((self.symbol_type >> 13) & 0x3);
        self.dimensions
            .iter()
            .take(dims)
            .filter(|&&d| d > 0)
            .fold(1u64, |n, &d| n.saturating_mul(u64::from(d)))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Template {
    id: u16,
    layout: Option<(u16, u32)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Register,
    List,
    Templates,
    Done,
}

/// A program whose tag list the controller refused, and its status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramRefused {
    pub program: String,
    pub general: u8,
    pub extended: u16,
}

/// The state of one discovery: which request is next, what was found.
#[derive(Clone, Debug)]
pub struct Discovery {
    route: Vec<RouteHop>,
    phase: Phase,
    awaiting: bool,
    session: u32,
    /// Scope 0 is the controller; then each program found there.
    programs: Vec<String>,
    scope: usize,
    /// The instance the next page is asked from.
    start: u32,
    /// The last instance kept in this scope (what is not above it was seen).
    last: Option<u32>,
    pages: u32,
    symbols: Vec<Discovered>,
    templates: Vec<Template>,
    template_cursor: usize,
    refused: Vec<ProgramRefused>,
}

impl Discovery {
    pub fn new(route: Vec<RouteHop>) -> Self {
        Discovery {
            route,
            phase: Phase::Register,
            awaiting: false,
            session: 0,
            programs: Vec::new(),
            scope: 0,
            start: 0,
            last: None,
            pages: 0,
            symbols: Vec::new(),
            templates: Vec::new(),
            template_cursor: 0,
            refused: Vec::new(),
        }
    }

    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// What the outstanding request asks (for a timeout's message).
    pub fn asked(&self) -> Asked {
        match self.phase {
            Phase::Register => Asked::RegisterSession,
            Phase::List | Phase::Done => Asked::TagList,
            Phase::Templates => Asked::Template,
        }
    }

    pub fn symbols(&self) -> &[Discovered] {
        &self.symbols
    }

    /// Programs listed (`Program:Name`), refused ones included.
    pub fn programs(&self) -> &[String] {
        &self.programs
    }

    pub fn programs_refused(&self) -> &[ProgramRefused] {
        &self.refused
    }

    pub fn pages(&self) -> u32 {
        self.pages
    }

    /// The next request into `buf` (at least `REQUEST_BYTES_MAX`), unless
    /// one is outstanding or discovery is done.
    pub fn poll_request(&mut self, buf: &mut [u8]) -> Option<usize> {
        if self.awaiting {
            return None;
        }
        let n = match self.phase {
            Phase::Register => encap::register_session(buf, CONTEXT),
            Phase::List => {
                let program = self.scope.checked_sub(1).and_then(|i| self.programs.get(i));
                let (start, program) = (self.start, program.map(String::as_str));
                self.unconnected(buf, |w| cip::write_symbol_list(w, program, start))
            }
            Phase::Templates => {
                let id = self.templates.get(self.template_cursor)?.id;
                self.unconnected(buf, |w| symbols::write_template_attributes(w, id))
            }
            Phase::Done => return None,
        };
        self.awaiting = n > 0;
        (n > 0).then_some(n)
    }

    /// The request `cip` writes, bare with no route, else in an Unconnected
    /// Send along it.
    fn unconnected(&self, buf: &mut [u8], cip: impl FnOnce(&mut Writer<'_>)) -> usize {
        let route = &self.route;
        encap::send_rr_data(buf, self.session, CONTEXT, |w| {
            if route.is_empty() {
                cip(w);
            } else {
                cip::write_unconnected_send(w, route, cip);
            }
        })
    }

    /// UnregisterSession, once registered.
    pub fn close(&self, buf: &mut [u8]) -> Option<usize> {
        let n = encap::unregister_session(buf, self.session);
        (self.session != 0 && n > 0).then_some(n)
    }

    /// Handles the answer to the outstanding request.
    pub fn handle(&mut self, frame: &Frame<'_>) -> Result<(), DiscoverError> {
        let asked = self.asked();
        let wire = |error| DiscoverError::Wire { asked, error };
        if !self.awaiting {
            return Err(wire(EnipError::Unsolicited {
                command: frame.header.command,
            }));
        }
        self.awaiting = false;
        match self.phase {
            Phase::Register => {
                self.session = encap::register_reply(frame).map_err(wire)?;
                self.phase = Phase::List;
                Ok(())
            }
            Phase::List => {
                let cip = encap::unconnected_reply(frame, self.session).map_err(wire)?;
                let reply = self.reply(cip, GET_INSTANCE_ATTRIBUTE_LIST)?;
                self.page(&reply)
            }
            Phase::Templates => {
                let cip = encap::unconnected_reply(frame, self.session).map_err(wire)?;
                let reply = self.reply(cip, GET_ATTRIBUTE_LIST)?;
                let layout = if reply.general == STATUS_SUCCESS {
                    symbols::template_attributes(reply.data).map_err(wire)?
                } else {
                    None
                };
                if let Some(t) = self.templates.get_mut(self.template_cursor) {
                    t.layout = layout;
                }
                self.template_cursor += 1;
                if self.template_cursor >= self.templates.len() {
                    self.phase = Phase::Done;
                }
                Ok(())
            }
            Phase::Done => Err(wire(EnipError::Unsolicited {
                command: frame.header.command,
            })),
        }
    }

    /// The reply to `service`, or a router's refusal to carry it.
    fn reply<'a>(&self, cip: &'a [u8], service: u8) -> Result<Reply<'a>, DiscoverError> {
        let asked = self.asked();
        let wire = |error| DiscoverError::Wire { asked, error };
        let reply = parse_reply(cip).map_err(wire)?;
        if !self.route.is_empty() && reply.service == SERVICE_0X52 {
            return Err(DiscoverError::RouteRefused {
                general: reply.general,
                extended: reply.extended,
            });
        }
        reply.expect(service).map_err(wire)?;
        Ok(reply)
    }

    /// One page of a scope's tag list.
    fn page(&mut self, reply: &Reply<'_>) -> Result<(), DiscoverError> {
        let wire = |error| DiscoverError::Wire {
            asked: Asked::TagList,
            error,
        };
        let Some(page) = SymbolPage::from_reply(reply) else {
            let Some(program) = self.scope.checked_sub(1).and_then(|i| self.programs.get(i)) else {
                return Err(DiscoverError::Refused {
                    asked: Asked::TagList,
                    general: reply.general,
                    extended: reply.extended,
                });
            };
            self.refused.push(ProgramRefused {
                program: program.clone(),
                general: reply.general,
                extended: reply.extended,
            });
            self.next_scope()?;
            return Ok(());
        };
        self.pages += 1;
        if self.pages > PAGES_MAX {
            return Err(DiscoverError::TooMany {
                what: "pages of tags",
                max: PAGES_MAX as usize,
            });
        }
        let mut kept = false;
        for symbol in page.symbols().map_err(wire)? {
            let symbol = symbol.map_err(wire)?;
            if self.last.is_some_and(|last| symbol.instance <= last) {
                continue;
            }
            self.last = Some(symbol.instance);
            kept = true;
            self.keep(&symbol)?;
        }
        if !page.more {
            return self.next_scope();
        }
        match (kept, self.last) {
            (true, Some(last)) => {
                self.start = last;
                Ok(())
            }
            _ => Err(DiscoverError::NoProgress {
                instance: self.start,
            }),
        }
    }

    fn keep(&mut self, symbol: &symbols::Symbol<'_>) -> Result<(), DiscoverError> {
        let name = String::from_utf8_lossy(symbol.name);
        let program = self.scope.checked_sub(1).and_then(|i| self.programs.get(i));
        if program.is_none() && name.starts_with("Program:") && !name.contains('.') {
            if self.programs.len() >= PROGRAMS_MAX {
                return Err(DiscoverError::TooMany {
                    what: "programs",
                    max: PROGRAMS_MAX,
                });
            }
            self.programs.push(name.into_owned());
            return Ok(());
        }
        if self.symbols.len() >= SYMBOLS_MAX {
            return Err(DiscoverError::TooMany {
                what: "tags",
                max: SYMBOLS_MAX,
            });
        }
        let address = match program {
            Some(program) => format!("{program}.{name}"),
            None => name.into_owned(),
        };
        self.symbols.push(Discovered {
            instance: symbol.instance,
            address,
            symbol_type: symbol.symbol_type,
            dimensions: symbol.dimensions,
        });
        Ok(())
    }

    /// The next program's tag list, or the templates once all are listed.
    fn next_scope(&mut self) -> Result<(), DiscoverError> {
        self.scope += 1;
        self.start = 0;
        self.last = None;
        if self.scope <= self.programs.len() {
            return Ok(());
        }
        let mut ids: Vec<u16> = self
            .symbols
            .iter()
            .filter(|s| s.is_struct() && !s.is_hidden())
            .map(|s| s.symbol_type & 0x0FFF)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() > TEMPLATES_MAX {
            return Err(DiscoverError::TooMany {
                what: "structure templates",
                max: TEMPLATES_MAX,
            });
        }
        self.templates = ids
            .into_iter()
            .map(|id| Template { id, layout: None })
            .collect();
        self.phase = if self.templates.is_empty() {
            Phase::Done
        } else {
            Phase::Templates
        };
        Ok(())
    }

    /// What millrace can read of `symbol`.
    pub fn kind(&self, symbol: &Discovered) -> Kind {
        if symbol.is_hidden() {
            return Kind::Hidden;
        }
        let count = symbol.elements();
        if symbol.is_struct() {
            let template = symbol.symbol_type & 0x0FFF;
            let layout = self
                .templates
                .iter()
                .find(|t| t.id == template)
                .and_then(|t| t.layout);
            return match layout {
                Some((handle, size)) if symbols::is_logix_string(handle, size) => {
                    Kind::String { count }
                }
                _ => Kind::Structure { template, layout },
            };
        }
        let code = symbol.symbol_type & 0x00FF;
        let data_type = match code {
            // A BOOL array: stored as DWORDs, 32 BOOLs each.
            0xD3 => {
                return Kind::Atomic {
                    data_type: CipType::Bool,
                    count: count.saturating_mul(32),
                }
            }
            0xC1 => CipType::Bool,
            0xC2 => CipType::SInt,
            0xC3 => CipType::Int,
            0xC4 => CipType::DInt,
            0xC5 => CipType::LInt,
            0xC6 => CipType::USInt,
            0xC7 => CipType::UInt,
            0xC8 => CipType::UDInt,
            0xC9 => CipType::ULInt,
            0xCA => CipType::Real,
            0xCB => CipType::LReal,
            _ => return Kind::Unsupported { type_code: code },
        };
        Kind::Atomic { data_type, count }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)] // tests index their own fixtures, not wire data
mod tests {
    use super::*;
    use crate::config::parse_enip_route;
    use crate::protocol::enip::cip::{parse_request, CONNECTION_MANAGER_PATH};
    use crate::protocol::enip::encap::{Framer, SEND_RR_DATA};

    const SESSION: u32 = 0x0102_0304;

    fn entry(instance: u32, name: &str, symbol_type: u16, dims: [u32; 3]) -> Vec<u8> {
        let mut v = instance.to_le_bytes().to_vec();
        v.extend_from_slice(&(name.len() as u16).to_le_bytes());
        v.extend_from_slice(name.as_bytes());
        v.extend_from_slice(&symbol_type.to_le_bytes());
        for d in dims {
            v.extend_from_slice(&d.to_le_bytes());
        }
        v
    }

    /// A SendRRData answer carrying the CIP reply `cip`.
    fn answer(cip: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; 2048];
        let n = encap::send_rr_data(&mut buf, SESSION, [0; 8], |w| w.bytes(cip));
        buf.truncate(n);
        buf
    }

    fn reply(service: u8, general: u8, data: &[u8]) -> Vec<u8> {
        let mut v = vec![service | 0x80, 0, general, 0];
        v.extend_from_slice(data);
        v
    }

    fn feed(d: &mut Discovery, bytes: &[u8]) -> Result<(), DiscoverError> {
        let mut framer = Framer::new();
        let frame = framer.next_frame(&mut &bytes[..]).unwrap().unwrap();
        d.handle(&frame)
    }

    fn register(d: &mut Discovery) {
        let mut buf = [0u8; REQUEST_BYTES_MAX];
        assert!(d.poll_request(&mut buf).is_some());
        let mut reg = [0u8; 64];
        let n = encap::register_session(&mut reg, [0; 8]);
        reg[4..8].copy_from_slice(&SESSION.to_le_bytes());
        feed(d, &reg[..n]).unwrap();
    }

    /// The CIP request of the next message, unwrapped from SendRRData.
    fn next_cip(d: &mut Discovery) -> Vec<u8> {
        let mut buf = [0u8; REQUEST_BYTES_MAX];
        let n = d.poll_request(&mut buf).expect("a request");
        let mut framer = Framer::new();
        let frame = framer.next_frame(&mut &buf[..n]).unwrap().unwrap();
        assert_eq!(frame.header.command, SEND_RR_DATA);
        // interface, timeout, count, null item, data item header
        frame.data[16..].to_vec()
    }

    #[test]
    fn pages_are_asked_from_the_last_seen_and_programs_are_listed() {
        let mut d = Discovery::new(Vec::new());
        register(&mut d);
        let first = next_cip(&mut d);
        assert_eq!(
            first,
            [0x55, 3, 0x20, 0x6B, 0x25, 0, 0, 0, 3, 0, 1, 0, 2, 0, 8, 0]
        );
        let mut page = entry(1, "Temps", 0x20CA, [200, 0, 0]);
        page.extend(entry(2, "Program:Main", 0x1068, [0; 3]));
        page.extend(entry(4, "__hidden", 0x00C4, [0; 3]));
        feed(&mut d, &answer(&reply(0x55, 0x06, &page))).unwrap();
        let second = next_cip(&mut d);
        assert_eq!(&second[4..8], &[0x25, 0, 4, 0], "from the last seen");
        // A controller that answers from the start on repeats instance 4.
        let mut page = entry(4, "__hidden", 0x00C4, [0; 3]);
        page.extend(entry(9, "Name", 0x8FCE, [0; 3]));
        page.extend(entry(12, "Alarms", 0x20D3, [2, 0, 0]));
        feed(&mut d, &answer(&reply(0x55, 0, &page))).unwrap();
        let scoped = next_cip(&mut d);
        let request = parse_request(&scoped).unwrap();
        assert!(request.path.starts_with(b"\x91\x0cProgram:Main"));
        feed(
            &mut d,
            &answer(&reply(0x55, 0, &entry(3, "Speed", 0x00CA, [0; 3]))),
        )
        .unwrap();
        // The STRING's template: handle 0x0FCE, 88 bytes.
        let template = next_cip(&mut d);
        assert_eq!(&template[..8], &[0x03, 3, 0x20, 0x6C, 0x25, 0, 0xCE, 0x0F]);
        let attrs = [2, 0, 1, 0, 0, 0, 0xCE, 0x0F, 5, 0, 0, 0, 88, 0, 0, 0];
        feed(&mut d, &answer(&reply(0x03, 0, &attrs))).unwrap();
        assert!(d.is_done());
        let names: Vec<&str> = d.symbols().iter().map(|s| s.address.as_str()).collect();
        assert_eq!(
            names,
            ["Temps", "__hidden", "Name", "Alarms", "Program:Main.Speed"]
        );
        let kinds: Vec<Kind> = d.symbols().iter().map(|s| d.kind(s)).collect();
        assert_eq!(
            kinds,
            [
                Kind::Atomic {
                    data_type: CipType::Real,
                    count: 200
                },
                Kind::Hidden,
                Kind::String { count: 1 },
                Kind::Atomic {
                    data_type: CipType::Bool,
                    count: 64
                },
                Kind::Atomic {
                    data_type: CipType::Real,
                    count: 1
                },
            ]
        );
        assert_eq!(d.programs(), ["Program:Main"]);
    }

    #[test]
    fn a_refused_tag_list_names_the_service() {
        let mut d = Discovery::new(Vec::new());
        register(&mut d);
        next_cip(&mut d);
        let error = feed(&mut d, &answer(&reply(0x55, 0x08, &[]))).unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("Get Instance Attribute List (0x55)"),
            "{text}"
        );
        assert!(text.contains("service not supported"), "{text}");
    }

    #[test]
    fn a_route_wraps_in_unconnected_send_and_its_refusal_says_path() {
        let route = parse_enip_route("1,3").unwrap();
        let mut d = Discovery::new(route);
        register(&mut d);
        let cip = next_cip(&mut d);
        let request = parse_request(&cip).unwrap();
        assert_eq!(
            (request.service, request.path),
            (0x52, &CONNECTION_MANAGER_PATH[..])
        );
        // ticks, length 16, the list request, route of one word: port 1 slot 3
        assert_eq!(&request.data[2..4], &[16, 0]);
        assert_eq!(&request.data[request.data.len() - 4..], &[1, 0, 1, 3]);
        let refused = [0xD2, 0, 0x01, 1, 0x12, 0x03];
        let error = feed(&mut d, &answer(&refused)).unwrap_err();
        assert_eq!(
            error,
            DiscoverError::RouteRefused {
                general: 1,
                extended: 0x0312
            }
        );
        assert!(error.to_string().contains("check `--path`"));
    }

    #[test]
    fn a_page_without_anything_new_stops() {
        let mut d = Discovery::new(Vec::new());
        register(&mut d);
        next_cip(&mut d);
        let page = entry(5, "A", 0xC4, [0; 3]);
        feed(&mut d, &answer(&reply(0x55, 6, &page))).unwrap();
        next_cip(&mut d);
        let error = feed(&mut d, &answer(&reply(0x55, 6, &page))).unwrap_err();
        assert_eq!(error, DiscoverError::NoProgress { instance: 5 });
        // and a malformed page is an error, not a panic
        let mut d = Discovery::new(Vec::new());
        register(&mut d);
        next_cip(&mut d);
        let cut = &entry(5, "A", 0xC4, [0; 3])[..9];
        assert!(matches!(
            feed(&mut d, &answer(&reply(0x55, 0, cut))),
            Err(DiscoverError::Wire { .. })
        ));
    }
}
