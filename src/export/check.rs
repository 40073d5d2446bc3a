//! Reads an exported file back and describes it: inputs and outputs with their shapes, the
//! operators, the node count. Reading the bytes that were written (not the structs they came
//! from) checks the encoding, and the walk checks that every node input is defined before use.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use prost::Message;

use super::onnx_proto::{ModelProto, ValueInfoProto};
use crate::{Error, Result};

/// A graph input or output: its name and dimensions (`N` for a symbolic one).
#[derive(Clone, Debug, PartialEq)]
pub struct Port {
    pub name: String,
    pub dims: Vec<String>,
}

/// What `hmreg export` prints about the file it wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphSummary {
    pub opset: i64,
    pub inputs: Vec<Port>,
    pub outputs: Vec<Port>,
    pub nodes: usize,
    /// Nodes per operator type.
    pub operators: BTreeMap<String, usize>,
    /// Values stored in initializers.
    pub weights: usize,
    pub bytes: usize,
    pub metadata: Vec<(String, String)>,
}

fn port(v: &ValueInfoProto) -> Port {
    let dims = v
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .and_then(|t| t.shape.as_ref())
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match (&d.dim_value, &d.dim_param) {
                    (Some(n), _) => n.to_string(),
                    (None, Some(p)) => p.clone(),
                    (None, None) => "?".into(),
                })
                .collect()
        })
        .unwrap_or_default();
    Port {
        name: v.name.clone(),
        dims,
    }
}

/// Decodes `bytes` as an ONNX model and checks that its graph is well-formed: every node input
/// is a graph input, an initializer or an earlier node's output, and every graph output is
/// produced.
pub fn summarize(bytes: &[u8]) -> Result<GraphSummary> {
    let model = ModelProto::decode(bytes)
        .map_err(|e| Error::Msg(format!("the written model does not decode: {e}")))?;
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| Error::Msg("the model has no graph".into()))?;
    let mut defined: HashSet<&str> = graph.input.iter().map(|v| v.name.as_str()).collect();
    defined.extend(graph.initializer.iter().map(|t| t.name.as_str()));
    let mut operators = BTreeMap::new();
    for n in &graph.node {
        if let Some(missing) = n
            .input
            .iter()
            .find(|i| !i.is_empty() && !defined.contains(i.as_str()))
        {
            return Err(Error::Msg(format!(
                "node {} ({}) reads `{missing}` before it is defined",
                n.name, n.op_type
            )));
        }
        defined.extend(n.output.iter().map(String::as_str));
        *operators.entry(n.op_type.clone()).or_insert(0) += 1;
    }
    if let Some(o) = graph
        .output
        .iter()
        .find(|o| !defined.contains(o.name.as_str()))
    {
        return Err(Error::Msg(format!(
            "graph output `{}` is produced by no node",
            o.name
        )));
    }
    let weights = graph
        .initializer
        .iter()
        .map(|t| t.dims.iter().product::<i64>().max(0) as usize)
        .sum();
    Ok(GraphSummary {
        opset: model.opset_import.first().map_or(0, |o| o.version),
        inputs: graph.input.iter().map(port).collect(),
        outputs: graph.output.iter().map(port).collect(),
        nodes: graph.node.len(),
        operators,
        weights,
        bytes: bytes.len(),
        metadata: model
            .metadata_props
            .iter()
            .map(|p| (p.key.clone(), p.value.clone()))
            .collect(),
    })
}

impl fmt::Display for GraphSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ports = |ps: &[Port]| -> String {
            ps.iter()
                .map(|p| format!("{} ({})", p.name, p.dims.join(", ")))
                .collect::<Vec<_>>()
                .join("; ")
        };
        writeln!(f, "opset:    {}", self.opset)?;
        writeln!(f, "inputs:   {}", ports(&self.inputs))?;
        writeln!(f, "outputs:  {}", ports(&self.outputs))?;
        let ops: Vec<String> = self
            .operators
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        writeln!(f, "nodes:    {} ({})", self.nodes, ops.join(", "))?;
        writeln!(f, "weights:  {} values", self.weights)?;
        write!(
            f,
            "size:     {} bytes ({:.1} MiB)",
            self.bytes,
            self.bytes as f64 / (1024.0 * 1024.0)
        )
    }
}
