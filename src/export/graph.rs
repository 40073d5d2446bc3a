//! ONNX nodes from a network's [`NetDescription`]: one builder that names values, stores weights
//! as initializers and knows which operator signatures changed between the opsets it writes
//! (11 to 17: only Resize's `roi` input, required up to opset 12 and optional from 13, matters
//! for the operators used here; the decoders avoid the reductions whose axes moved to an input).

use super::onnx_proto::{attribute_type, data_type, AttributeProto, NodeProto, TensorProto};
use crate::models::describe::{NetDescription, Op, INPUT};
use crate::{Error, Result};

/// The graph's input: normalised images `(N, 3, H, W)`.
pub const INPUT_NAME: &str = "image";
/// The network's output: one map per point `(N, L, h, w)`.
pub const HEATMAPS: &str = "heatmaps";

/// An attribute of a node.
pub fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        i: Some(v),
        r#type: attribute_type::INT,
        ..Default::default()
    }
}

pub fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        ints: v.to_vec(),
        r#type: attribute_type::INTS,
        ..Default::default()
    }
}

pub fn attr_str(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        s: Some(v.as_bytes().to_vec()),
        r#type: attribute_type::STRING,
        ..Default::default()
    }
}

/// Nodes and initializers of one graph, in topological order.
pub struct GraphBuilder {
    pub opset: i64,
    pub nodes: Vec<NodeProto>,
    pub initializers: Vec<TensorProto>,
    next: usize,
}

impl GraphBuilder {
    pub fn new(opset: i64) -> Self {
        GraphBuilder {
            opset,
            nodes: Vec::new(),
            initializers: Vec::new(),
            next: 0,
        }
    }

    fn fresh(&mut self, hint: &str) -> String {
        self.next += 1;
        format!("{hint}_{}", self.next)
    }

    /// Adds a node with `outputs` fresh outputs and returns their names.
    pub fn node_n(
        &mut self,
        op: &str,
        inputs: &[&str],
        outputs: usize,
        attribute: Vec<AttributeProto>,
    ) -> Vec<String> {
        let name = self.fresh(op);
        let output: Vec<String> = (0..outputs).map(|i| format!("{name}:{i}")).collect();
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: output.clone(),
            name,
            op_type: op.into(),
            attribute,
        });
        output
    }

    /// Adds a node with one output and returns its name.
    pub fn node(&mut self, op: &str, inputs: &[&str], attribute: Vec<AttributeProto>) -> String {
        self.node_n(op, inputs, 1, attribute).remove(0)
    }

    /// A float initializer, little-endian in `raw_data`.
    pub fn floats(&mut self, hint: &str, dims: &[usize], data: &[f32]) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len());
        let name = self.fresh(hint);
        self.initializers.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: data_type::FLOAT,
            name: name.clone(),
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name
    }

    /// A 1-D int64 initializer (shapes, `k`).
    pub fn ints(&mut self, hint: &str, data: &[i64]) -> String {
        let name = self.fresh(hint);
        self.initializers.push(TensorProto {
            dims: vec![data.len() as i64],
            data_type: data_type::INT64,
            name: name.clone(),
            int64_data: data.to_vec(),
            ..Default::default()
        });
        name
    }

    /// Renames the output `from` of the last node that produced it (and every later input).
    pub fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        let producer = self
            .nodes
            .iter_mut()
            .rev()
            .find(|n| n.output.iter().any(|o| o == from))
            .ok_or_else(|| Error::Msg(format!("no node produces `{from}`")))?;
        for o in producer.output.iter_mut().filter(|o| *o == from) {
            *o = to.to_string();
        }
        for n in &mut self.nodes {
            for i in n.input.iter_mut().filter(|i| *i == from) {
                *i = to.to_string();
            }
        }
        Ok(())
    }

    fn relu_if(&mut self, x: String, relu: bool) -> String {
        if relu {
            self.node("Relu", &[&x], vec![])
        } else {
            x
        }
    }

    /// `Resize` by an integer factor on H and W, with `attrs` choosing the interpolation.
    fn resize(&mut self, x: &str, factor: usize, attrs: Vec<AttributeProto>) -> String {
        let f = factor as f32;
        let scales = self.floats("scales", &[4], &[1.0, 1.0, f, f]);
        // Opsets 11 and 12 require the roi input (unused unless the mode is tf_crop_and_resize);
        // from 13 on it may be left empty.
        let roi = if self.opset < 13 {
            self.floats("roi", &[0], &[])
        } else {
            String::new()
        };
        self.node("Resize", &[x, &roi, &scales], attrs)
    }

    /// The network's operations; returns the name of its output, renamed [`HEATMAPS`].
    pub fn add_net(&mut self, net: &NetDescription) -> Result<String> {
        let mut names: Vec<String> = vec![INPUT_NAME.to_string()];
        for (i, op) in net.ops.iter().enumerate() {
            let v = |id: usize| names[id].clone();
            let out = match op {
                Op::Conv {
                    input,
                    weight,
                    shape,
                    bias,
                    stride,
                    padding,
                    relu,
                } => {
                    let w = self.floats("weight", shape, weight);
                    let b = self.floats("bias", &[shape[0]], bias);
                    let (k, s, p) = (shape[2] as i64, *stride as i64, *padding as i64);
                    let y = self.node(
                        "Conv",
                        &[&v(*input), &w, &b],
                        vec![
                            attr_ints("kernel_shape", &[k, k]),
                            attr_ints("strides", &[s, s]),
                            attr_ints("pads", &[p, p, p, p]),
                        ],
                    );
                    self.relu_if(y, *relu)
                }
                Op::Affine {
                    input,
                    scale,
                    shift,
                    relu,
                } => {
                    let c = scale.len();
                    let a = self.floats("bn_scale", &[1, c, 1, 1], scale);
                    let b = self.floats("bn_shift", &[1, c, 1, 1], shift);
                    let y = self.node("Mul", &[&v(*input), &a], vec![]);
                    let y = self.node("Add", &[&y, &b], vec![]);
                    self.relu_if(y, *relu)
                }
                Op::Relu(x) => self.node("Relu", &[&v(*x)], vec![]),
                Op::Add { a, b, relu } => {
                    let y = self.node("Add", &[&v(*a), &v(*b)], vec![]);
                    self.relu_if(y, *relu)
                }
                Op::MaxPool {
                    input,
                    kernel,
                    stride,
                    padding,
                } => {
                    let (k, s, p) = (*kernel as i64, *stride as i64, *padding as i64);
                    self.node(
                        "MaxPool",
                        &[&v(*input)],
                        vec![
                            attr_ints("kernel_shape", &[k, k]),
                            attr_ints("strides", &[s, s]),
                            attr_ints("pads", &[p, p, p, p]),
                        ],
                    )
                }
                Op::AvgPool { input, size } => {
                    let s = *size as i64;
                    self.node(
                        "AveragePool",
                        &[&v(*input)],
                        vec![
                            attr_ints("kernel_shape", &[s, s]),
                            attr_ints("strides", &[s, s]),
                        ],
                    )
                }
                Op::UpsampleNearest { input, factor } => self.resize(
                    &v(*input),
                    *factor,
                    vec![
                        attr_str("mode", "nearest"),
                        attr_str("coordinate_transformation_mode", "asymmetric"),
                        attr_str("nearest_mode", "floor"),
                    ],
                ),
                Op::UpsampleBilinear { input, factor } => self.resize(
                    &v(*input),
                    *factor,
                    vec![
                        attr_str("mode", "linear"),
                        attr_str("coordinate_transformation_mode", "half_pixel"),
                    ],
                ),
                Op::Concat(inputs) => {
                    let ins: Vec<String> = inputs.iter().map(|&x| v(x)).collect();
                    let refs: Vec<&str> = ins.iter().map(String::as_str).collect();
                    self.node("Concat", &refs, vec![attr_int("axis", 1)])
                }
                Op::PixelShuffle { input, factor } => self.node(
                    "DepthToSpace",
                    &[&v(*input)],
                    vec![
                        attr_int("blocksize", *factor as i64),
                        attr_str("mode", "CRD"),
                    ],
                ),
            };
            debug_assert_eq!(names.len(), i + 1);
            names.push(out);
        }
        if net.output == INPUT {
            return Err(Error::Msg("the network's output is its input".into()));
        }
        let out = names[net.output].clone();
        self.rename(&out, HEATMAPS)?;
        Ok(HEATMAPS.to_string())
    }
}
