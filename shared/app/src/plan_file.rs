//! Plan files (`tollgate plans put FILE`): one plan or a list of plans in
//! YAML or JSON, each validated, no name twice. Here rather than in the
//! CLI so that the fuzz target reads files exactly as the CLI does.

use tollgate_core::{CoreError, Plan};

/// Why a plan file was refused (each message names the file).
#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    /// The text does not parse as JSON (a `.json` file) or YAML.
    #[error("{file} is not valid {format}: {reason}")]
    Syntax {
        /// The file's name.
        file: String,
        /// `JSON` or `YAML`.
        format: &'static str,
        /// The parser's message.
        reason: String,
    },
    /// The document is not a plan or a list of plans.
    #[error("{file} is not a plan or a list of plans: {reason}")]
    NotAPlan {
        /// The file's name.
        file: String,
        /// The parser's message.
        reason: String,
    },
    /// An empty list.
    #[error("{file} holds no plan")]
    Empty {
        /// The file's name.
        file: String,
    },
    /// A plan that does not validate.
    #[error(transparent)]
    Invalid(#[from] CoreError),
    /// Two plans of one name.
    #[error("plan {name:?} appears twice in {file}")]
    Twice {
        /// The plan's name.
        name: String,
        /// The file's name.
        file: String,
    },
}

/// Reads one plan or a list of plans from `text`, the contents of `file`
/// (JSON when its name ends in `.json`, in any case; else YAML).
pub fn parse_plans(text: &str, file: &str) -> Result<Vec<Plan>, PlanFileError> {
    let is_json = file
        .rsplit_once('.')
        .is_some_and(|(_, e)| e.eq_ignore_ascii_case("json"));
    let not_a_plan = |reason: String| PlanFileError::NotAPlan {
        file: file.to_owned(),
        reason,
    };
    let syntax = |format, reason: String| PlanFileError::Syntax {
        file: file.to_owned(),
        format,
        reason,
    };
    let plans: Vec<Plan> = if is_json {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| syntax("JSON", e.to_string()))?;
        if value.is_array() {
            serde_json::from_value(value)
        } else {
            serde_json::from_value(value).map(|p| vec![p])
        }
        .map_err(|e| not_a_plan(e.to_string()))?
    } else {
        let value: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(text).map_err(|e| syntax("YAML", e.to_string()))?;
        if value.is_sequence() {
            serde_yaml_ng::from_value(value)
        } else {
            serde_yaml_ng::from_value(value).map(|p| vec![p])
        }
        .map_err(|e| not_a_plan(e.to_string()))?
    };
    if plans.is_empty() {
        return Err(PlanFileError::Empty {
            file: file.to_owned(),
        });
    }
    for (i, plan) in plans.iter().enumerate() {
        plan.validate()?;
        if plans[..i].iter().any(|p| p.name == plan.name) {
            return Err(PlanFileError::Twice {
                name: plan.name.clone(),
                file: file.to_owned(),
            });
        }
    }
    Ok(plans)
}
