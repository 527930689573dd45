//! Finding a deployed stack's tables and queues: `--stage` names them the way
//! `template.yaml` does (`tollgate-keys-<stage>`), `--stack` reads them from
//! the CloudFormation stack's outputs.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context, Result};
use aws_config::{BehaviorVersion, Region};
use tollgate_store::TableNames;

/// Where the CLI finds its tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `TOLLGATE_*_TABLE`, else the local defaults (`tollgate-keys`, ...).
    Environment,
    /// The template's names for a stage.
    Stage(String),
    /// The outputs of a CloudFormation stack.
    Stack(String),
}

impl Target {
    /// `--stack` wins over `--stage`; neither means the environment.
    pub fn from_args(stage: Option<String>, stack: Option<String>) -> Result<Target> {
        match (stage, stack) {
            (_, Some(stack)) if stack.trim().is_empty() => bail!("--stack needs a stack name"),
            (_, Some(stack)) => Ok(Target::Stack(stack)),
            (Some(stage), None) => {
                let valid = !stage.is_empty()
                    && stage.len() <= 20
                    && stage
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                if !valid {
                    bail!("--stage {stage:?}: the template allows 1 to 20 of a-z, 0-9 and -");
                }
                Ok(Target::Stage(stage))
            }
            (None, None) => Ok(Target::Environment),
        }
    }
}

/// A stack's outputs, by output key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outputs(pub BTreeMap<String, String>);

impl Outputs {
    /// Reads the outputs of `stack` (`DescribeStacks`) in `region`.
    pub async fn of_stack(stack: &str, region: Option<&str>) -> Result<Outputs> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = region {
            loader = loader.region(Region::new(region.to_owned()));
        }
        let client = aws_sdk_cloudformation::Client::new(&loader.load().await);
        let out = client
            .describe_stacks()
            .stack_name(stack)
            .send()
            .await
            .with_context(|| format!("describing stack {stack}"))?;
        let found = out
            .stacks()
            .first()
            .ok_or_else(|| anyhow!("no stack named {stack}"))?;
        Ok(Outputs(
            found
                .outputs()
                .iter()
                .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
                .collect(),
        ))
    }

    /// One output's value.
    pub fn get(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
}

/// The table names of `target`, with the stack's outputs when it is one.
pub async fn resolve(target: &Target, region: Option<&str>) -> Result<(TableNames, Outputs)> {
    match target {
        Target::Environment => Ok((TableNames::from_env(), Outputs::default())),
        Target::Stage(stage) => Ok((TableNames::for_stage(stage), Outputs::default())),
        Target::Stack(stack) => {
            let outputs = Outputs::of_stack(stack, region).await?;
            let names = TableNames::from_outputs(|k| outputs.get(k)).map_err(|missing| {
                anyhow!("stack {stack} has no output {missing}: is it a tollgate stack?")
            })?;
            Ok((names, outputs))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_stack_wins_and_a_bad_stage_is_refused() {
        assert_eq!(
            Target::from_args(Some("prod".into()), Some("s".into())).unwrap(),
            Target::Stack("s".into())
        );
        assert_eq!(
            Target::from_args(Some("dev-2".into()), None).unwrap(),
            Target::Stage("dev-2".into())
        );
        assert_eq!(Target::from_args(None, None).unwrap(), Target::Environment);
        for bad in ["", "Prod", "a_b", "x".repeat(21).as_str()] {
            let e = Target::from_args(Some(bad.into()), None).unwrap_err();
            assert!(e.to_string().contains("--stage"), "{e}");
        }
        assert!(Target::from_args(None, Some(" ".into())).is_err());
    }
}
