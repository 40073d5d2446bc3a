//! PyTorch `.pth` files (`torch.save`'s zip archive: `<name>/data.pkl` holds the pickled state
//! dict, `<name>/data/<key>` each tensor's storage), read without trusting the file.
//!
//! Candle's pickle machine ([`candle_core::pickle::Stack`]) does the unpickling, but its own
//! driver (`candle_core::pickle::read_all`) assumes a well-formed file: a string opcode may claim
//! 4 GB and is allocated before it is read, memo references clone whole objects (a few hundred
//! bytes of pickle that double a list forty times ask for 2^40 objects), nested objects are
//! dropped recursively (a deep enough nest overflows the stack), a short tuple where a tensor's
//! arguments belong panics on `Vec::remove`, and a tensor's declared shape is allocated before
//! its bytes are read. So this module drives the machine one opcode at a time with a budget and
//! a depth bound, decodes tensor entries itself with every arity and sign checked, and reads a
//! tensor's bytes only after its declared size fits in its storage entry and in the file.

use std::io::{Cursor, Read};
use std::path::Path;

use candle_core::pickle::{Object, Stack};
use candle_core::{DType, Device, Layout, Shape, Tensor};

use crate::{Error, Result};

/// `data.pkl` of a state dict is a few hundred KB even for large models.
const MAX_PICKLE_BYTES: u64 = 64 << 20;

/// Nesting deeper than this is not a state dict (they are five or six levels deep).
const MAX_DEPTH: usize = 64;

/// Bytes of objects that unpickling may create or inspect in all (each opcode's result is
/// measured, memo clones included): far above what a state dict needs, far below harm.
const MAX_WORK_BYTES: u64 = 256 << 20;

/// What one object node costs against [`MAX_WORK_BYTES`] besides its strings' bytes.
const NODE_BYTES: u64 = 64;

/// Reads every tensor of a PyTorch `.pth` file: the top-level state dict, or, when that holds no
/// tensors, the state dict under the first of `nested_keys` that has some.
pub fn read_pth(path: &Path, nested_keys: &[&str]) -> Result<Vec<(String, Tensor)>> {
    let fail = |msg: String| Error::file(path, format!("not a readable PyTorch checkpoint: {msg}"));
    let file_len = std::fs::metadata(path)
        .map_err(|e| Error::file(path, format!("cannot read: {e}")))?
        .len();
    let file =
        std::fs::File::open(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| fail(format!("not a zip archive: {e}")))?;
    let pickle_name = zip
        .file_names()
        .filter_map(|n| n.ok())
        .find(|n| n.ends_with("data.pkl"))
        .map(|n| n.into_owned())
        .ok_or_else(|| fail("no data.pkl in the archive".into()))?;
    let dir = pickle_name.trim_end_matches(".pkl").to_string();
    let pickle = {
        let entry = zip
            .by_name(&pickle_name)
            .map_err(|e| fail(format!("{pickle_name}: {e}")))?;
        if entry.size() > MAX_PICKLE_BYTES {
            return Err(fail(format!(
                "{pickle_name} declares {} bytes (more than {MAX_PICKLE_BYTES}): not a state dict",
                entry.size()
            )));
        }
        let mut bytes = Vec::new();
        entry
            .take(MAX_PICKLE_BYTES)
            .read_to_end(&mut bytes)
            .map_err(|e| fail(format!("{pickle_name}: {e}")))?;
        bytes
    };
    let top = unpickle(&pickle).map_err(|m| fail(format!("{pickle_name}: {m}")))?;
    let top = unwrap_module(top);
    let mut found = state_dict_entries(top.clone(), path)?;
    if found.is_empty() {
        for key in nested_keys {
            if let Some(inner) = dict_value(&top, key) {
                found = state_dict_entries(inner, path)?;
                if !found.is_empty() {
                    break;
                }
            }
        }
    }
    if found.is_empty() {
        return Err(Error::file(
            path,
            format!(
                "no tensors found at the top level or under {}",
                nested_keys.join(", ")
            ),
        ));
    }
    found
        .into_iter()
        .map(|info| {
            let t = read_tensor(&mut zip, &dir, &info, file_len)
                .map_err(|m| Error::file(path, format!("tensor `{}`: {m}", info.name)))?;
            Ok((info.name, t))
        })
        .collect()
}

/// Runs the pickle machine over `bytes` within the budget and depth bound.
fn unpickle(bytes: &[u8]) -> std::result::Result<Object, String> {
    let mut stack = Stack::empty();
    let mut r = Cursor::new(bytes);
    let mut work = 0u64;
    loop {
        let at = r.position() as usize;
        let Some(&op) = bytes.get(at) else {
            return Err("ends before its STOP opcode (truncated?)".into());
        };
        check_operands(op, &bytes[at + 1..]).map_err(|m| format!("byte {at}: {m}"))?;
        let stop = stack.read(&mut r).map_err(|e| format!("byte {at}: {e}"))?;
        if stop {
            break;
        }
        if let Some(last) = stack.stack().last() {
            let (cost, depth) = measure(last);
            if depth > MAX_DEPTH {
                return Err(format!(
                    "byte {at}: objects nested more than {MAX_DEPTH} deep: not a state dict"
                ));
            }
            work += cost;
            if work > MAX_WORK_BYTES {
                return Err(format!(
                    "byte {at}: unpickling would build more than {MAX_WORK_BYTES} bytes of objects \
                     (repeated memo references?): not a state dict"
                ));
            }
        }
    }
    stack.finalize().map_err(|e| e.to_string())
}

/// Refuses the opcodes whose operands Candle would trust: a string longer than the rest of the
/// pickle (allocated before it is read) and a LONG1 wider than 8 bytes (its shifts overflow).
fn check_operands(op: u8, rest: &[u8]) -> std::result::Result<(), String> {
    match op {
        b'X' if rest.len() >= 4 => {
            let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if len > rest.len() - 4 {
                return Err(format!(
                    "a string of {len} bytes runs past the end of the pickle"
                ));
            }
        }
        0x8a if rest.first().is_some_and(|&n| n > 8) => {
            return Err(format!("an integer of {} bytes (at most 8 here)", rest[0]));
        }
        _ => {}
    }
    Ok(())
}

/// Bytes an object stands for (nodes and string contents) and its nesting depth, without
/// recursion (the depth is what is being bounded).
fn measure(obj: &Object) -> (u64, usize) {
    let mut cost = 0u64;
    let mut max_depth = 0;
    let mut todo = vec![(obj, 1usize)];
    while let Some((o, d)) = todo.pop() {
        cost += NODE_BYTES;
        max_depth = max_depth.max(d);
        if d > MAX_DEPTH {
            // Deep enough to refuse; do not walk the rest.
            return (cost, d);
        }
        match o {
            Object::Class {
                module_name,
                class_name,
            } => cost += (module_name.len() + class_name.len()) as u64,
            Object::Unicode(s) => cost += s.len() as u64,
            Object::Tuple(v) | Object::List(v) => todo.extend(v.iter().map(|c| (c, d + 1))),
            Object::Dict(kv) => {
                for (k, v) in kv {
                    todo.push((k, d + 1));
                    todo.push((v, d + 1));
                }
            }
            Object::Reduce { callable, args } | Object::Build { callable, args } => {
                todo.push((callable, d + 1));
                todo.push((args, d + 1));
            }
            Object::PersistentLoad(inner) => todo.push((inner, d + 1)),
            _ => {}
        }
    }
    (cost, max_depth)
}

/// TorchScript-style files wrap the state dict as `__torch__.Module` built from it.
fn unwrap_module(obj: Object) -> Object {
    if let Object::Build { callable, args } = &obj {
        if let Object::Reduce { callable: c, .. } = callable.as_ref() {
            if let Object::Class {
                module_name,
                class_name,
            } = c.as_ref()
            {
                if module_name == "__torch__" && class_name == "Module" {
                    return args.as_ref().clone();
                }
            }
        }
    }
    obj
}

fn dict_value(obj: &Object, key: &str) -> Option<Object> {
    match obj {
        Object::Dict(kv) => kv
            .iter()
            .find(|(k, _)| matches!(k, Object::Unicode(s) if s == key))
            .map(|(_, v)| v.clone()),
        _ => None,
    }
}

/// One tensor as the pickle describes it.
struct TensorEntry {
    name: String,
    dtype: DType,
    dims: Vec<usize>,
    stride: Vec<usize>,
    /// In elements, as torch counts it.
    offset: usize,
    /// Storage key: the file `<dir>/<key>` in the archive.
    key: String,
    /// Elements in the storage.
    storage_elems: usize,
}

/// The tensors among a dict's values (other values, e.g. an epoch counter, are skipped). A value
/// that is a tensor rebuild with malformed arguments is an error naming the tensor.
fn state_dict_entries(obj: Object, path: &Path) -> Result<Vec<TensorEntry>> {
    let Object::Dict(kv) = obj else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (k, v) in kv {
        let Object::Unicode(name) = k else { continue };
        match tensor_entry(v) {
            Ok(Some((dtype, dims, stride, offset, key, storage_elems))) => out.push(TensorEntry {
                name,
                dtype,
                dims,
                stride,
                offset,
                key,
                storage_elems,
            }),
            Ok(None) => {}
            Err(m) => return Err(Error::file(path, format!("tensor `{name}`: {m}"))),
        }
    }
    Ok(out)
}

type Decoded = (DType, Vec<usize>, Vec<usize>, usize, String, usize);

fn class_of(obj: &Object) -> Option<(&str, &str)> {
    match obj {
        Object::Class {
            module_name,
            class_name,
        } => Some((module_name.as_str(), class_name.as_str())),
        _ => None,
    }
}

fn tuple_of(obj: Object, at_least: usize, what: &str) -> std::result::Result<Vec<Object>, String> {
    match obj {
        Object::Tuple(v) if v.len() >= at_least => Ok(v),
        Object::Tuple(v) => Err(format!(
            "{what} has {} arguments, expected at least {at_least}",
            v.len()
        )),
        _ => Err(format!("{what}: expected a tuple of arguments")),
    }
}

fn non_negative(obj: &Object, what: &str) -> std::result::Result<usize, String> {
    match obj {
        Object::Int(i) if *i >= 0 => Ok(*i as usize),
        Object::Long(i) if *i >= 0 => {
            usize::try_from(*i).map_err(|_| format!("{what} {i} is too large"))
        }
        other => Err(format!(
            "{what} must be a whole number >= 0, found {}",
            brief(other)
        )),
    }
}

fn usizes(obj: &Object, what: &str) -> std::result::Result<Vec<usize>, String> {
    match obj {
        Object::Tuple(v) => v.iter().map(|o| non_negative(o, what)).collect(),
        other => Err(format!("{what} must be a tuple, found {}", brief(other))),
    }
}

/// A short description of an object for messages (never its whole content).
fn brief(obj: &Object) -> String {
    match obj {
        Object::Int(i) => i.to_string(),
        Object::Long(i) => i.to_string(),
        Object::Float(f) => f.to_string(),
        Object::Unicode(s) => format!("{:?}", s.chars().take(40).collect::<String>()),
        Object::Tuple(v) => format!("a tuple of {}", v.len()),
        _ => "another kind of object".into(),
    }
}

/// Decodes `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`, possibly inside
/// `_rebuild_parameter` or `torch._tensor._rebuild_from_type_v2`. `Ok(None)`: not a tensor.
fn tensor_entry(obj: Object) -> std::result::Result<Option<Decoded>, String> {
    let Object::Reduce { callable, args } = obj else {
        return Ok(None);
    };
    let (mut callable, mut args) = (*callable, *args);
    match class_of(&callable) {
        Some(("torch._tensor", "_rebuild_from_type_v2")) => {
            let mut a = tuple_of(args, 3, "_rebuild_from_type_v2")?;
            args = a.swap_remove(2);
            callable = a.swap_remove(0);
        }
        Some(("torch._utils", "_rebuild_parameter")) => {
            let mut a = tuple_of(args, 1, "_rebuild_parameter")?;
            match a.swap_remove(0) {
                Object::Reduce {
                    callable: c,
                    args: r,
                } => {
                    callable = *c;
                    args = *r;
                }
                _ => return Err("_rebuild_parameter does not wrap a tensor".into()),
            }
        }
        _ => {}
    }
    if class_of(&callable) != Some(("torch._utils", "_rebuild_tensor_v2")) {
        return Ok(None);
    }
    let a = tuple_of(args, 4, "_rebuild_tensor_v2")?;
    let offset = non_negative(&a[1], "storage offset")?;
    let dims = usizes(&a[2], "size")?;
    let stride = usizes(&a[3], "stride")?;
    let storage = match &a[0] {
        Object::PersistentLoad(inner) => inner.as_ref().clone(),
        _ => return Err("the storage is not a persistent reference".into()),
    };
    let s = tuple_of(storage, 5, "storage reference")?;
    let dtype = match class_of(&s[1]).map(|(_, c)| c) {
        Some("FloatStorage") => DType::F32,
        Some("DoubleStorage") => DType::F64,
        Some("HalfStorage") => DType::F16,
        Some("BFloat16Storage") => DType::BF16,
        Some("ByteStorage") => DType::U8,
        Some("LongStorage") => DType::I64,
        Some(other) => return Err(format!("unsupported storage type {other}")),
        None => return Err("the storage type is not a class".into()),
    };
    let key = match &s[2] {
        Object::Unicode(k) => k.clone(),
        other => {
            return Err(format!(
                "storage key must be a string, found {}",
                brief(other)
            ))
        }
    };
    let storage_elems = non_negative(&s[4], "storage size")?;
    Ok(Some((dtype, dims, stride, offset, key, storage_elems)))
}

/// Reads one tensor's bytes once its declared extent is known to fit its storage entry.
fn read_tensor<R: std::io::Read + std::io::Seek>(
    zip: &mut zip::ZipArchive<R>,
    dir: &str,
    info: &TensorEntry,
    file_len: u64,
) -> std::result::Result<Tensor, String> {
    if info.dims.len() != info.stride.len() {
        return Err(format!(
            "size {:?} and stride {:?} differ in rank",
            info.dims, info.stride
        ));
    }
    let elems = info
        .dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("size {:?} overflows", info.dims))?;
    let dsize = info.dtype.size_in_bytes();
    let byte_len = |n: usize| n.checked_mul(dsize);
    let (Some(start), Some(len), Some(end), Some(storage_bytes)) = (
        byte_len(info.offset),
        byte_len(elems),
        info.offset.checked_add(elems).and_then(byte_len),
        byte_len(info.storage_elems),
    ) else {
        return Err(format!(
            "size {:?} at offset {} overflows",
            info.dims, info.offset
        ));
    };
    if end > storage_bytes {
        return Err(format!(
            "size {:?} at offset {} needs {end} bytes but its storage holds {storage_bytes}",
            info.dims, info.offset
        ));
    }
    let layout = Layout::new(Shape::from(info.dims.clone()), info.stride.clone(), start);
    let fortran = layout.is_fortran_contiguous() && !layout.is_contiguous();
    if !layout.is_contiguous() && !fortran {
        return Err(format!(
            "strides {:?} for size {:?} are not contiguous (not supported)",
            info.stride, info.dims
        ));
    }
    let name = format!("{dir}/{}", info.key);
    let entry = zip
        .by_name(&name)
        .map_err(|e| format!("storage {name}: {e}"))?;
    if (end as u64) > entry.size() || (end as u64) > file_len {
        return Err(format!(
            "storage {name} holds {} bytes, fewer than the {end} its tensor needs",
            entry.size()
        ));
    }
    let mut reader = entry;
    std::io::copy(
        &mut reader.by_ref().take(start as u64),
        &mut std::io::sink(),
    )
    .map_err(|e| format!("storage {name}: {e}"))?;
    let mut bytes = vec![0u8; len];
    reader
        .read_exact(&mut bytes)
        .map_err(|e| format!("storage {name}: {e}"))?;
    let t = if fortran && info.dims.len() > 1 {
        let reversed: Vec<usize> = info.dims.iter().rev().copied().collect();
        let order: Vec<usize> = (0..info.dims.len()).rev().collect();
        Tensor::from_raw_buffer(&bytes, info.dtype, &reversed, &Device::Cpu)
            .and_then(|t| t.permute(order))
    } else {
        Tensor::from_raw_buffer(&bytes, info.dtype, &info.dims, &Device::Cpu)
    };
    t.map_err(|e| e.to_string())
}
