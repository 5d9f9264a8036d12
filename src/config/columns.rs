//! A sink's `columns` key: the kdb+ table's columns in order, checked with
//! `kdb::Schema`'s rules, and the rule between sinks and devices: a sink
//! whose columns have no `text` cannot take a device with text tags (the
//! text would have nowhere to go); a sink's `devices` decide what it takes.

use super::error::ConfigError;
use super::suggest::did_you_mean;
use super::tree::Section;
use super::types::{DeviceConfig, SinkConfig};
use crate::kdb::{Column, Schema, SchemaError};

const COLUMNS_EXPECTED: &str =
    "an array of column names: \"time\", \"sym\" first, then \"device\", \"value\", \
     \"quality\", \"seq\" in any order, \"text\" if a device it takes has text tags, and \
     \"gateway\" for the [gateway] id";

/// The sink's `columns`, or the default schema when the key is absent.
pub fn sink_columns(section: &Section<'_>) -> Result<Schema, ConfigError> {
    let Some(list) = section.strings("columns", COLUMNS_EXPECTED)? else {
        return Ok(Schema::DEFAULT);
    };
    let names = list.value.iter().map(|name| name.value);
    let error = match Schema::from_names(names) {
        Ok(schema) => return Ok(schema),
        Err(error) => error,
    };
    let element = |index: usize| list.value.get(index).map_or(&list.at, |name| &name.at);
    let all: Vec<&str> = Column::ALL.iter().map(|c| c.name()).collect();
    let (at, problem) = match &error {
        SchemaError::Unknown { index, name } => {
            let problem = match did_you_mean(name, &all) {
                Some(near) => format!("{error} (did you mean `{near}`?)"),
                None => error.to_string(),
            };
            (element(*index), problem)
        }
        SchemaError::Duplicate { index, .. } | SchemaError::TimeSymFirst { index, .. } => {
            (element(*index), error.to_string())
        }
        SchemaError::Missing { .. } => (&list.at, error.to_string()),
    };
    Err(ConfigError::new(at.clone(), problem).expected(COLUMNS_EXPECTED))
}

/// Every sink must carry the text of every device it takes that has text
/// tags. `sections` are the `[[sink]]` tables, in the order of `sinks`.
pub fn check_text_columns(
    sections: &[Section<'_>],
    sinks: &[SinkConfig],
    devices: &[DeviceConfig],
) -> Result<(), ConfigError> {
    for (sink, section) in sinks.iter().zip(sections) {
        if sink.columns.has_text() {
            continue;
        }
        let Some((device, tag)) = devices
            .iter()
            .filter(|d| sink.takes(&d.name))
            .find_map(|d| d.text_tag().map(|tag| (d, tag)))
        else {
            continue;
        };
        let problem = format!(
            "sink `{}` has no `text` column, but device `{}` has the text tag `{tag}`",
            sink.name, device.name
        );
        return Err(
            ConfigError::new(section.location("columns"), problem).expected(
                "add \"text\" to the sink's columns and to the tickerplant's table schema, e.g. \
             columns = [\"time\", \"sym\", \"device\", \"value\", \"quality\", \"seq\", \"text\"]",
            ),
        );
    }
    Ok(())
}
