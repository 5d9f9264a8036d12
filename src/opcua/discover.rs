//! `millrace discover --protocol opcua URL`: browses a server's address
//! space from one node (default `Objects`) and writes its variables as a
//! tag CSV (`name,address,type`) that `tags_csv` accepts.
//!
//! The walk follows hierarchical references forward (Organizes,
//! HasComponent and their subtypes) breadth first, each node once, at most
//! `DEPTH_MAX` deep and `NODES_MAX` nodes; it leaves out what a plant does
//! not poll as tags: properties (HasProperty: engineering units, ranges,
//! descriptions), and, when it starts at `Objects`, the standard nodes of
//! namespace 0 (the `Server` object's status and diagnostics; `--node
//! i=2253` lists those). A variable's name is the path of
//! browse names below the start node joined by `.` (`Cell3.Temp`), its
//! address its NodeId, its type its declared DataType when millrace reads
//! that type, its count the length of a one-dimensional array (declared by
//! ArrayDimensions, else its current value's). Arrays of more dimensions or
//! unknown length and types millrace does not read are listed in the
//! summary with the reason, never dropped silently.
//!
//! The connection is security None with an anonymous identity, and
//! touches no file: no PKI directory is made for it.

use std::collections::{HashSet, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use opcua::client::{ClientBuilder, Session};
use opcua::types::{
    AttributeId, BrowseDescription, BrowseDirection, BrowseResultMask, ByteString, DataValue,
    NodeClass, NodeId, ObjectId, ReadValueId, ReferenceTypeId, TimestampsToReturn, Variant,
};

use crate::config::opcua_node::parse_node_id;
use crate::config::OpcuaType;

/// Deepest level below the start node the walk goes.
pub const DEPTH_MAX: usize = 32;
/// Most nodes the walk visits: far more than a machine's tags, and a bound
/// on a server whose address space loops or never ends.
pub const NODES_MAX: usize = 200_000;
/// Nodes per Browse request.
const BROWSE_BATCH: usize = 100;
/// References per node per answer (the rest by BrowseNext).
const REFERENCES_PER_NODE: u32 = 1_000;
/// Variables per Read of their attributes (three reads each).
const VARIABLES_PER_READ: usize = 300;

pub struct DiscoverArgs {
    /// `opc.tcp://host[:port][/path]`.
    pub url: String,
    /// The NodeId text to start from; `None`: the Objects folder.
    pub node: Option<String>,
    /// Where the CSV goes; stdout when `None`.
    pub out: Option<PathBuf>,
    /// Put in front of every tag name (`cell3.`).
    pub prefix: String,
    /// Connecting and each service call.
    pub timeout: Duration,
}

/// Why discovery failed, in words.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverFailure {
    #[error("`{url}`: {problem}")]
    Url { url: String, problem: String },
    #[error("--node `{node}`: {problem}")]
    Node { node: String, problem: String },
    #[error("{url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("{url}: the server answered {service} with {status}")]
    Service {
        url: String,
        service: &'static str,
        status: String,
    },
    #[error("{url}: no answer to {service} within {timeout_ms} ms")]
    Timeout {
        url: String,
        service: &'static str,
        timeout_ms: u128,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("starting the client runtime: {0}")]
    Runtime(std::io::Error),
}

/// A variable the walk found.
#[derive(Clone, Debug)]
pub struct Variable {
    /// Browse names from below the start node to the variable.
    pub path: Vec<String>,
    pub node_id: NodeId,
}

/// What a variable's attributes say.
#[derive(Clone, Debug, PartialEq)]
pub struct Attributes {
    /// Its DataType attribute, if readable.
    pub data_type: Option<NodeId>,
    /// Its ValueRank (-1 scalar, -2 any, -3 scalar or one dimension, >= 0
    /// arrays), if readable.
    pub value_rank: Option<i32>,
    /// Its ArrayDimensions when it declares exactly one (0: any length).
    pub dimension: Option<u32>,
    /// The length of its current value when that is an array.
    pub value_len: Option<usize>,
}

/// One CSV row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub name: String,
    pub address: String,
    pub data_type: OpcuaType,
    /// Array elements (1: a scalar).
    pub count: u32,
}

/// What discovery found, sorted into rows and what was left out.
#[derive(Clone, Debug, Default)]
pub struct Found {
    pub rows: Vec<Row>,
    /// Variables left out: name, address and the reason.
    pub skipped: Vec<(String, String, String)>,
    pub nodes: usize,
    pub properties: usize,
    pub standard: usize,
    /// Nodes below the start the server would not browse, with its status.
    pub unbrowsable: Vec<(String, String)>,
    /// The walk stopped at `NODES_MAX` or `DEPTH_MAX`.
    pub truncated: bool,
}

/// Browses the server and writes the CSV; returns the summary.
pub fn run(args: &DiscoverArgs) -> Result<String, DiscoverFailure> {
    let url =
        crate::config::check_opcua_url(&args.url).map_err(|problem| DiscoverFailure::Url {
            url: args.url.clone(),
            problem,
        })?;
    let start = match &args.node {
        None => NodeId::from(ObjectId::ObjectsFolder),
        Some(text) => {
            let parsed = parse_node_id(text).map_err(|e| DiscoverFailure::Node {
                node: text.clone(),
                problem: e.to_string(),
            })?;
            parsed
                .to_string()
                .parse::<NodeId>()
                .map_err(|_| DiscoverFailure::Node {
                    node: text.clone(),
                    problem: "the OPC UA stack does not take this NodeId".to_string(),
                })?
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(DiscoverFailure::Runtime)?;
    let found = runtime.block_on(walk(&url, start, args))?;
    let csv = to_csv(&found.rows);
    match &args.out {
        Some(path) => std::fs::write(path, csv).map_err(|source| DiscoverFailure::Write {
            path: path.clone(),
            source,
        })?,
        None => {
            // A closed stdout (`| head`) is the reader's choice, not a failure.
            let _ = std::io::Write::write_all(&mut std::io::stdout(), csv.as_bytes());
        }
    }
    Ok(summary(&url, &found, args.out.as_deref()))
}

/// Connects, walks, reads the variables' attributes, disconnects.
async fn walk(url: &str, start: NodeId, args: &DiscoverArgs) -> Result<Found, DiscoverFailure> {
    let session = connect(url, args.timeout).await?;
    let result = async {
        let mut found = Found::default();
        let variables = browse(&session, url, start, args.timeout, &mut found).await?;
        let attributes = read_attributes(&session, url, &variables, args.timeout).await?;
        sort(&mut found, &variables, &attributes, &args.prefix);
        Ok(found)
    }
    .await;
    let _ = tokio::time::timeout(args.timeout, session.disconnect()).await;
    result
}

async fn connect(url: &str, timeout: Duration) -> Result<Arc<Session>, DiscoverFailure> {
    let failed = |reason: String| DiscoverFailure::Connect {
        url: url.to_string(),
        reason,
    };
    let config = ClientBuilder::new()
        .application_name("millrace discover")
        .application_uri("urn:millrace:discover")
        .product_uri("urn:millrace")
        .create_sample_keypair(false)
        .trust_server_certs(false)
        .session_retry_limit(0)
        .request_timeout(timeout)
        .session_name("millrace discover")
        .into_config();
    let (session, event_loop) = super::connect::anonymous_session(&config, url, timeout)
        .await
        .map_err(failed)?;
    let mut events = event_loop.spawn();
    tokio::select! {
        up = tokio::time::timeout(timeout, session.wait_for_connection()) => match up {
            Ok(true) => Ok(session),
            _ => Err(failed("the session did not open in time".to_string())),
        },
        ended = &mut events => Err(failed(match ended {
            Ok(status) => format!("the session ended: {status}"),
            Err(_) => "the session ended".to_string(),
        })),
    }
}

/// Breadth first from `start`; every variable found, in walk order.
async fn browse(
    session: &Session,
    url: &str,
    start: NodeId,
    timeout: Duration,
    found: &mut Found,
) -> Result<Vec<Variable>, DiscoverFailure> {
    // From the Objects folder the standard nodes (the Server object) are
    // not the plant's; from a start node asked for, everything below is.
    let skip_standard = start == ObjectId::ObjectsFolder;
    let mut variables = Vec::new();
    let mut seen: HashSet<NodeId> = HashSet::from([start.clone()]);
    let mut queue: VecDeque<(NodeId, Vec<String>)> = VecDeque::from([(start, Vec::new())]);
    while !queue.is_empty() {
        let batch: Vec<(NodeId, Vec<String>)> =
            queue.drain(..queue.len().min(BROWSE_BATCH)).collect();
        let descriptions: Vec<BrowseDescription> = batch
            .iter()
            .map(|(node, _)| BrowseDescription {
                node_id: node.clone(),
                browse_direction: BrowseDirection::Forward,
                reference_type_id: ReferenceTypeId::HierarchicalReferences.into(),
                include_subtypes: true,
                node_class_mask: NodeClass::Object as u32 | NodeClass::Variable as u32,
                result_mask: BrowseResultMask::All as u32,
            })
            .collect();
        let results = call(
            url,
            "Browse",
            timeout,
            session.browse(&descriptions, REFERENCES_PER_NODE, None),
        )
        .await?;
        for ((node, path), result) in batch.iter().zip(results) {
            if result.status_code.is_bad() {
                // The start node is what was asked for: a server that
                // cannot browse it has nothing to list. Below it, one
                // node it refuses is one line of the summary.
                if path.is_empty() {
                    return Err(DiscoverFailure::Service {
                        url: url.to_string(),
                        service: "Browse",
                        status: format!("{} for the start node {node}", result.status_code),
                    });
                }
                found
                    .unbrowsable
                    .push((node.to_string(), result.status_code.to_string()));
                continue;
            }
            let mut references = result.references.unwrap_or_default();
            let mut continuation = result.continuation_point;
            while !continuation.is_null() {
                let points: [ByteString; 1] = [continuation];
                let next = call(
                    url,
                    "BrowseNext",
                    timeout,
                    session.browse_next(false, &points),
                )
                .await?;
                let Some(next) = next.into_iter().next() else {
                    break;
                };
                references.extend(next.references.unwrap_or_default());
                continuation = next.continuation_point;
            }
            for reference in references {
                let node = reference.node_id.node_id;
                if reference.node_id.server_index != 0 || !seen.insert(node.clone()) {
                    continue;
                }
                found.nodes += 1;
                if reference.reference_type_id == ReferenceTypeId::HasProperty {
                    found.properties += 1;
                    continue;
                }
                if skip_standard && node.namespace == 0 {
                    found.standard += 1;
                    continue;
                }
                let mut below = path.clone();
                below.push(reference.browse_name.name.as_ref().to_string());
                if reference.node_class == NodeClass::Variable {
                    variables.push(Variable {
                        path: below.clone(),
                        node_id: node.clone(),
                    });
                }
                if seen.len() >= NODES_MAX || below.len() >= DEPTH_MAX {
                    found.truncated = true;
                    continue;
                }
                queue.push_back((node, below));
            }
        }
    }
    Ok(variables)
}

/// DataType, ValueRank, ArrayDimensions and Value of every variable.
async fn read_attributes(
    session: &Session,
    url: &str,
    variables: &[Variable],
    timeout: Duration,
) -> Result<Vec<Attributes>, DiscoverFailure> {
    const ASKED: [AttributeId; 4] = [
        AttributeId::DataType,
        AttributeId::ValueRank,
        AttributeId::ArrayDimensions,
        AttributeId::Value,
    ];
    let mut attributes = Vec::with_capacity(variables.len());
    for chunk in variables.chunks(VARIABLES_PER_READ) {
        let reads: Vec<ReadValueId> = chunk
            .iter()
            .flat_map(|v| ASKED.map(|a| ReadValueId::new(v.node_id.clone(), a)))
            .collect();
        let values = call(
            url,
            "Read",
            timeout,
            session.read(&reads, TimestampsToReturn::Neither, 0.0),
        )
        .await?;
        if values.len() != reads.len() {
            return Err(DiscoverFailure::Service {
                url: url.to_string(),
                service: "Read",
                status: format!("{} values for {} attributes", values.len(), reads.len()),
            });
        }
        attributes.extend(values.chunks(ASKED.len()).map(attributes_of));
    }
    Ok(attributes)
}

/// One variable's four attribute values, as read.
fn attributes_of(values: &[DataValue]) -> Attributes {
    let value = |i: usize| values.get(i).and_then(|v| v.value.as_ref());
    Attributes {
        data_type: match value(0) {
            Some(Variant::NodeId(id)) => Some((**id).clone()),
            _ => None,
        },
        value_rank: match value(1) {
            Some(Variant::Int32(rank)) => Some(*rank),
            _ => None,
        },
        dimension: match value(2) {
            Some(Variant::Array(dims)) => match dims.values.as_slice() {
                [Variant::UInt32(n)] => Some(*n),
                _ => None,
            },
            _ => None,
        },
        value_len: match value(3) {
            Some(Variant::Array(array)) => Some(array.values.len()),
            _ => None,
        },
    }
}

async fn call<T>(
    url: &str,
    service: &'static str,
    timeout: Duration,
    request: impl std::future::Future<Output = Result<T, opcua::types::Error>>,
) -> Result<T, DiscoverFailure> {
    match tokio::time::timeout(timeout, request).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => Err(DiscoverFailure::Service {
            url: url.to_string(),
            service,
            status: e.status().to_string(),
        }),
        Err(_) => Err(DiscoverFailure::Timeout {
            url: url.to_string(),
            service,
            timeout_ms: timeout.as_millis(),
        }),
    }
}

/// The type millrace reads for a DataType NodeId: the built-in types and
/// the standard subtypes that travel as one of them.
pub fn type_of(data_type: &NodeId) -> Option<OpcuaType> {
    if data_type.namespace != 0 {
        return None;
    }
    let opcua::types::Identifier::Numeric(id) = data_type.identifier else {
        return None;
    };
    Some(match id {
        1 => OpcuaType::Boolean,
        2 => OpcuaType::SByte,
        3 => OpcuaType::Byte,
        4 => OpcuaType::Int16,
        5 => OpcuaType::UInt16,
        // Int32; Integer-valued enumerations travel as Int32 too, but an
        // enumeration's DataType is its own, so it is not matched here.
        6 => OpcuaType::Int32,
        // UInt32, Counter, IntegerId.
        7 | 289 | 288 => OpcuaType::UInt32,
        8 => OpcuaType::Int64,
        9 => OpcuaType::UInt64,
        10 => OpcuaType::Float,
        // Double, Duration.
        11 | 290 => OpcuaType::Double,
        // String, LocaleId, NumericRange.
        12 | 295 | 291 => OpcuaType::String(crate::config::STRING_BYTES_DEFAULT),
        // DateTime, UtcTime.
        13 | 294 => OpcuaType::DateTime,
        _ => return None,
    })
}

/// Rows from the variables and their attributes, and what was left out.
pub fn sort(found: &mut Found, variables: &[Variable], attributes: &[Attributes], prefix: &str) {
    let mut names: HashSet<String> = HashSet::new();
    for (variable, attrs) in variables.iter().zip(attributes) {
        let address = variable.node_id.to_string();
        let address = address
            .strip_prefix("ns=0;")
            .unwrap_or(&address)
            .to_string();
        let name = format!("{prefix}{}", variable.path.join("."));
        let (count, reason) = match (attrs.data_type.as_ref().map(type_of), count_of(attrs)) {
            (None, _) => (1, Some("its DataType could not be read".to_string())),
            (Some(None), _) => (
                1,
                attrs.data_type.as_ref().map(|data_type| {
                    format!("DataType {data_type}, which is not a built-in type millrace reads")
                }),
            ),
            (_, Err(why)) => (1, Some(why)),
            (Some(Some(t)), Ok(count)) if count > 1 && t.is_text() => (
                count,
                Some("an array of strings: not built yet for opcua devices".to_string()),
            ),
            (_, Ok(count)) => (count, None),
        };
        let reason = reason.or_else(|| {
            crate::config::check_tag_name(&name).err().or_else(|| {
                (!names.insert(name.clone()))
                    .then(|| format!("the name `{name}` is taken by another variable"))
            })
        });
        match (reason, attrs.data_type.as_ref().and_then(type_of)) {
            (None, Some(data_type)) => found.rows.push(Row {
                name,
                address,
                data_type,
                count,
            }),
            (reason, _) => found.skipped.push((
                name,
                address,
                reason.unwrap_or_else(|| "its type is unknown".to_string()),
            )),
        }
    }
}

/// Elements of the variable's value: 1 for a scalar, the declared or
/// current length of a one-dimensional array, or why it cannot be a tag.
fn count_of(attrs: &Attributes) -> Result<u32, String> {
    let rank = attrs.value_rank.unwrap_or(-2);
    if rank > 1 {
        return Err(format!(
            "an array of {rank} dimensions: add its elements by hand"
        ));
    }
    // -1 scalar; -2 any and -3 scalar or one dimension go by the value.
    if rank < 0 && attrs.value_len.is_none() {
        return Ok(1);
    }
    let len = match (attrs.dimension, attrs.value_len) {
        (Some(n), _) if n > 0 => n as usize,
        (_, Some(n)) => n,
        _ => 0,
    };
    match len {
        0 => Err("an array of unknown length: add it by hand with `count`".to_string()),
        n if n as i64 > crate::config::OPCUA_COUNT_MAX => Err(format!(
            "an array of {n} elements, more than the {} one tag reads",
            crate::config::OPCUA_COUNT_MAX
        )),
        n => Ok(n as u32),
    }
}

/// The rows as a tag CSV (`name,address,type,count`, quoted where
/// needed).
pub fn to_csv(rows: &[Row]) -> String {
    let mut text = String::from("name,address,type,count\n");
    for r in rows {
        let _ = writeln!(
            text,
            "{},{},{},{}",
            crate::app::discover::quoted(&r.name),
            crate::app::discover::quoted(&r.address),
            r.data_type,
            r.count
        );
    }
    text
}

/// What was found and written, and what was left out and why.
fn summary(url: &str, found: &Found, out: Option<&Path>) -> String {
    let mut s = String::new();
    let to = out.map_or_else(|| "stdout".to_string(), |p| p.display().to_string());
    let _ = writeln!(
        s,
        "{url}: {} tags written to {to}, from {} nodes browsed",
        found.rows.len(),
        found.nodes
    );
    let _ = writeln!(
        s,
        "  left out: {} properties (HasProperty) and {} standard nodes of namespace 0",
        found.properties, found.standard
    );
    if found.truncated {
        let _ = writeln!(
            s,
            "  the walk stopped at {NODES_MAX} nodes or {DEPTH_MAX} levels: start lower with \
             --node to see the rest"
        );
    }
    for (node, status) in &found.unbrowsable {
        let _ = writeln!(s, "  not browsed `{node}`: the server answered {status}");
    }
    for (name, address, reason) in &found.skipped {
        let _ = writeln!(s, "  left out `{name}` ({address}): {reason}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variable(path: &[&str], id: &str) -> Variable {
        Variable {
            path: path.iter().map(|p| p.to_string()).collect(),
            node_id: id.parse().unwrap(),
        }
    }

    fn scalar(data_type: u32) -> Attributes {
        Attributes {
            data_type: Some(NodeId::new(0, data_type)),
            value_rank: Some(-1),
            dimension: None,
            value_len: None,
        }
    }

    #[test]
    fn built_in_types_and_their_standard_subtypes_are_read_and_nothing_else() {
        assert_eq!(type_of(&NodeId::new(0, 11u32)), Some(OpcuaType::Double));
        assert_eq!(type_of(&NodeId::new(0, 290u32)), Some(OpcuaType::Double));
        assert_eq!(type_of(&NodeId::new(0, 294u32)), Some(OpcuaType::DateTime));
        assert!(matches!(
            type_of(&NodeId::new(0, 12u32)),
            Some(OpcuaType::String(_))
        ));
        // ByteString, a structure, a server's own type.
        assert_eq!(type_of(&NodeId::new(0, 15u32)), None);
        assert_eq!(type_of(&NodeId::new(0, 22u32)), None);
        assert_eq!(type_of(&NodeId::new(2, 6u32)), None);
    }

    #[test]
    fn arrays_are_counted_and_what_cannot_be_a_tag_is_left_out_with_the_reason() {
        let variables = [
            variable(&["Cell", "Temp"], "ns=2;s=Cell.Temp"),
            variable(&["Cell", "Curve"], "ns=2;s=Cell.Curve"),
            variable(&["Cell", "Blob"], "ns=2;i=7"),
            variable(&["Cell", "Temp"], "ns=3;s=Other"),
            variable(&["Cell", "Any"], "ns=2;s=Any"),
            variable(&["Cell", "Grid"], "ns=2;s=Grid"),
            variable(&["Cell", "Open"], "ns=2;s=Open"),
        ];
        let mut curve = scalar(11);
        curve.value_rank = Some(1);
        curve.dimension = Some(8);
        let mut any_holding_array = scalar(6);
        any_holding_array.value_rank = Some(-2);
        any_holding_array.value_len = Some(3);
        let mut grid = scalar(11);
        grid.value_rank = Some(2);
        let mut open = scalar(11);
        open.value_rank = Some(1);
        let attributes = [
            scalar(11),
            curve,
            scalar(15),
            scalar(6),
            any_holding_array,
            grid,
            open,
        ];
        let mut found = Found::default();
        sort(&mut found, &variables, &attributes, "c3.");
        let row = |name: &str, address: &str, data_type, count| Row {
            name: name.into(),
            address: address.into(),
            data_type,
            count,
        };
        assert_eq!(
            found.rows,
            [
                row("c3.Cell.Temp", "ns=2;s=Cell.Temp", OpcuaType::Double, 1),
                row("c3.Cell.Curve", "ns=2;s=Cell.Curve", OpcuaType::Double, 8),
                row("c3.Cell.Any", "ns=2;s=Any", OpcuaType::Int32, 3),
            ]
        );
        let skipped: Vec<&str> = found.skipped.iter().map(|(_, a, _)| a.as_str()).collect();
        assert_eq!(
            skipped,
            ["ns=2;i=7", "ns=3;s=Other", "ns=2;s=Grid", "ns=2;s=Open"]
        );
        assert_eq!(found.skipped[0].0, "c3.Cell.Blob");
        assert!(found.skipped[0].2.contains("i=15"));
        assert!(found.skipped[1].2.contains("taken"));
        assert!(found.skipped[2].2.contains("2 dimensions"));
        assert!(found.skipped[3].2.contains("unknown length"));
    }

    #[test]
    fn the_csv_is_what_tags_csv_reads() {
        let rows = [Row {
            name: "a,b".into(),
            address: "ns=2;s=x".into(),
            data_type: OpcuaType::Int32,
            count: 2,
        }];
        assert_eq!(
            to_csv(&rows),
            "name,address,type,count\n\"a,b\",ns=2;s=x,int32,2\n"
        );
    }
}
