//! `tollgate meters put|list`: the meters that ingest accepts events for.

use anyhow::{Context, Result};
use aws_sdk_dynamodb::Client;
use clap::{Subcommand, ValueEnum};
use tollgate_core::{Aggregation, MeterDef, MeterName};
use tollgate_store::{KeysStore, TableNames};

/// `--aggregation`: how a meter's events combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AggregationArg {
    Count,
    Sum,
    Max,
}

impl AggregationArg {
    /// The name `tollgate_core::Aggregation` parses.
    pub fn as_str(self) -> &'static str {
        match self {
            AggregationArg::Count => "count",
            AggregationArg::Sum => "sum",
            AggregationArg::Max => "max",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum MetersCommand {
    /// Create or replace a meter definition.
    Put {
        /// The meter's name: 1-64 characters of a-z, 0-9, '_' or '-'.
        name: String,
        /// How events combine: count (one per event), sum (of the values) or max.
        #[arg(long, value_enum, default_value_t = AggregationArg::Sum)]
        aggregation: AggregationArg,
        /// The unit of a value, for people (tokens, bytes, ms).
        #[arg(long, default_value = "")]
        unit: String,
        /// Where a CloudEvent's data holds the value of a sum or max meter,
        /// e.g. $.tokens or $.usage['output-tokens'] (default: $.value).
        #[arg(long)]
        value_path: Option<String>,
    },
    /// List every meter.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(client: &Client, names: &TableNames, command: MetersCommand) -> Result<()> {
    let store = KeysStore::new(client.clone(), names.keys.clone());
    match command {
        MetersCommand::Put {
            name,
            aggregation,
            unit,
            value_path,
        } => {
            let mut def = parse_meter(&name, aggregation.as_str(), &unit)?;
            def.value_path = value_path
                .as_deref()
                .map(tollgate_core::ValuePath::parse)
                .transpose()
                .context("--value-path")?;
            store.put_meter(&def).await.context("storing the meter")?;
            println!(
                "meter {} ({}, {})",
                def.name,
                def.aggregation,
                unit_or_dash(&def.unit)
            );
        }
        MetersCommand::List { json } => {
            let mut meters = store.list_meters().await.context("listing meters")?;
            meters.sort_by(|a, b| a.name.cmp(&b.name));
            if json {
                println!("{}", serde_json::to_string_pretty(&meters)?);
            } else {
                print!("{}", render(&meters));
            }
        }
    }
    Ok(())
}

/// Checks a meter definition from the command line.
pub fn parse_meter(name: &str, aggregation: &str, unit: &str) -> Result<MeterDef> {
    Ok(MeterDef {
        name: MeterName::new(name)?,
        aggregation: aggregation.parse::<Aggregation>()?,
        unit: unit.trim().to_owned(),
        value_path: None,
    })
}

fn unit_or_dash(unit: &str) -> &str {
    if unit.is_empty() {
        "-"
    } else {
        unit
    }
}

/// The meters as a table.
pub fn render(meters: &[MeterDef]) -> String {
    let mut out = format!(
        "{:<24} {:<11} {:<12} {}\n",
        "METER", "AGGREGATION", "UNIT", "VALUE PATH"
    );
    for m in meters {
        let path = m
            .cloudevent_value_path()
            .map(|p| p.to_string())
            .unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "{:<24} {:<11} {:<12} {}\n",
            m.name.as_str(),
            m.aggregation.to_string(),
            unit_or_dash(&m.unit),
            path
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_and_renders() {
        let m = parse_meter("tokens", "sum", " tokens ").unwrap();
        assert_eq!(m.aggregation, Aggregation::Sum);
        assert_eq!(m.unit, "tokens");
        assert!(parse_meter("Tokens", "sum", "").is_err());
        assert!(parse_meter("tokens", "avg", "").is_err());
        let table = render(&[m, parse_meter("calls", "count", "").unwrap()]);
        assert!(table.contains("tokens                   sum         tokens       $.value"));
        assert!(table.contains("calls                    count       -            -"));
    }
}
