//! Vectorised conditions: the part of Rhai that maps onto Polars
//! expressions (comparisons, `&&` `||` `!`, `+` `-` `*`, literals, the
//! account's variables, `in` lists of literals) is translated once, at
//! policy load, and evaluated column by column for every account at once.
//! Anything else (function calls, helpers, division, `if`, statements) runs
//! in Rhai per account, as before; `dunning check` says which rule runs
//! which way.
//!
//! The two paths must agree on every account. Rhai's numbers are exact
//! (64-bit integers, and decimals for amounts); here amounts are 64-bit
//! integers scaled by a power of ten (cents for money). Before a condition
//! is evaluated, the range of every column is known, and the range of every
//! intermediate result is worked out from it: a condition whose arithmetic
//! could leave 64 bits on tonight's data runs in Rhai instead, so the
//! vectorised path never rounds and never wraps. `tests/vector.rs` checks
//! the agreement on random conditions and on generated nights.

use crate::script::{Fact, Facts, SEGMENT_VARIABLE, VARIABLES};
use polars::prelude::*;
use rayon::prelude::*;
use rhai::{Dynamic, Expr as RExpr, FnCallExpr, Stmt, AST};
use rust_decimal::Decimal;

/// A value's type as the translator sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Bool,
    Int,
    Dec,
    Str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arith {
    Add,
    Sub,
    Mul,
}

/// A condition in the subset, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Bool(bool),
    Int(i64),
    Dec(Decimal),
    Str(String),
    /// A variable: its index (see [`Facts::value`]; the segment is
    /// [`SEGMENT`]) and type.
    Var(usize, Ty),
    Not(Box<Node>),
    And(Vec<Node>),
    Or(Vec<Node>),
    Cmp(Cmp, Box<Node>, Box<Node>),
    Arith(Arith, Box<Node>, Box<Node>),
    Neg(Box<Node>),
    /// `x in [a, b, ...]`, every element of x's type.
    In(Box<Node>, Vec<Node>),
}

/// The variable index that stands for `segment`.
pub const SEGMENT: usize = usize::MAX;

impl Node {
    pub fn ty(&self) -> Ty {
        match self {
            Node::Bool(_)
            | Node::Not(_)
            | Node::And(_)
            | Node::Or(_)
            | Node::Cmp(..)
            | Node::In(..) => Ty::Bool,
            Node::Int(_) => Ty::Int,
            Node::Dec(_) => Ty::Dec,
            Node::Str(_) => Ty::Str,
            Node::Var(_, t) => *t,
            Node::Neg(x) => x.ty(),
            Node::Arith(_, a, b) => {
                if a.ty() == Ty::Int && b.ty() == Ty::Int {
                    Ty::Int
                } else {
                    Ty::Dec
                }
            }
        }
    }

    /// Every variable the node reads.
    pub fn reads(&self, out: &mut Vec<usize>) {
        match self {
            Node::Var(i, _) => {
                if !out.contains(i) {
                    out.push(*i);
                }
            }
            Node::Not(x) | Node::Neg(x) => x.reads(out),
            Node::And(xs) | Node::Or(xs) => xs.iter().for_each(|x| x.reads(out)),
            Node::Cmp(_, a, b) | Node::Arith(_, a, b) => {
                a.reads(out);
                b.reads(out);
            }
            Node::In(x, xs) => {
                x.reads(out);
                xs.iter().for_each(|x| x.reads(out));
            }
            Node::Bool(_) | Node::Int(_) | Node::Dec(_) | Node::Str(_) => {}
        }
    }
}

/// A helper function of the policy, for inlining: `fn name(params) { body }`
/// where the body is one expression.
#[derive(Debug, Clone)]
pub struct Helper {
    pub name: String,
    pub params: Vec<String>,
    /// The body compiled on its own, or why it cannot be inlined.
    pub body: Result<AST, String>,
}

impl Helper {
    /// Every function of a helper file, its body cut from `source` by the
    /// positions Rhai recorded and compiled as an expression of its
    /// parameters.
    pub fn from_file(engine: &rhai::Engine, source: &str, ast: &AST) -> Vec<Helper> {
        ast.iter_fn_def()
            .map(|f| {
                let params: Vec<String> = f.params.iter().map(|p| p.to_string()).collect();
                let body = (|| {
                    let start = offset(source, f.body.start_position()).ok_or("no position")?;
                    let end = offset(source, f.body.end_position()).ok_or("no position")?;
                    let text = source
                        .get(start..end)
                        .and_then(|t| t.strip_prefix('{'))
                        .ok_or("its body could not be read")?;
                    let mut scope = rhai::Scope::new();
                    for p in &params {
                        scope.push_dynamic(p.as_str(), Dynamic::UNIT);
                    }
                    engine
                        .compile_with_scope(&scope, text)
                        .map_err(|e| format!("its body does not compile alone: {e}"))
                })();
                Helper {
                    name: f.name.to_string(),
                    params,
                    body,
                }
            })
            .collect()
    }
}

/// The byte offset of a Rhai position (1-based line and character).
fn offset(source: &str, pos: rhai::Position) -> Option<usize> {
    let (line, column) = (pos.line()?, pos.position()?);
    let start = source
        .split_inclusive('\n')
        .take(line - 1)
        .map(str::len)
        .sum::<usize>();
    let rest = source.get(start..)?;
    Some(
        start
            + rest
                .char_indices()
                .nth(column - 1)
                .map_or(rest.len(), |(i, _)| i),
    )
}

/// How deep helpers may call helpers before the condition runs in Rhai.
const MAX_INLINE: usize = 8;

/// The variables a condition may read, by name: index and type; inside a
/// helper, only its parameters.
pub struct Names<'a> {
    pub flags: &'a [String],
    pub with_segment: bool,
    pub helpers: &'a [Helper],
    /// Inside a helper: its parameters bound to the caller's arguments.
    pub params: Option<&'a [(String, Node)]>,
    pub depth: usize,
}

impl Names<'_> {
    fn lookup(&self, name: &str) -> Option<(usize, Ty)> {
        let ty = |t: &str| match t {
            "string" => Ty::Str,
            "bool" => Ty::Bool,
            "int" => Ty::Int,
            _ => Ty::Dec,
        };
        if let Some(i) = VARIABLES.iter().position(|v| v.0 == name) {
            return Some((i, ty(VARIABLES[i].1)));
        }
        if let Some(i) = self.flags.iter().position(|f| f == name) {
            return Some((VARIABLES.len() + i, Ty::Bool));
        }
        (self.with_segment && name == SEGMENT_VARIABLE.0).then_some((SEGMENT, Ty::Str))
    }
}

/// Translates a compiled condition, or says why it stays in Rhai.
pub fn translate(ast: &AST, names: &Names<'_>) -> Result<Node, String> {
    let node = match ast.statements() {
        [Stmt::Expr(e)] => expr(e, names)?,
        [Stmt::FnCall(f, _)] => call(f, names)?,
        [] => return Err("is empty".into()),
        [Stmt::If(..)] => return Err("uses `if`".into()),
        [Stmt::Switch(..)] => return Err("uses `switch`".into()),
        [_] => return Err("is a statement, not an expression".into()),
        _ => return Err("has several statements".into()),
    };
    if node.ty() != Ty::Bool {
        return Err("does not give true or false".into());
    }
    Ok(node)
}

fn expr(e: &RExpr, names: &Names<'_>) -> Result<Node, String> {
    Ok(match e {
        RExpr::BoolConstant(b, _) => Node::Bool(*b),
        RExpr::IntegerConstant(n, _) => Node::Int(*n),
        RExpr::StringConstant(s, _) => Node::Str(s.to_string()),
        RExpr::DynamicConstant(d, _) => constant(d)?,
        RExpr::Variable(v, _, _) => {
            let name = v.1.as_str();
            if let Some(params) = names.params {
                return params
                    .iter()
                    .find(|(p, _)| p == name)
                    .map(|(_, n)| n.clone())
                    .ok_or_else(|| format!("a helper reads `{name}`"));
            }
            let (i, ty) = names
                .lookup(name)
                .ok_or_else(|| format!("reads `{name}`, which is not an account variable"))?;
            Node::Var(i, ty)
        }
        RExpr::And(xs, _) => Node::And(bools(xs, names, "&&")?),
        RExpr::Or(xs, _) => Node::Or(bools(xs, names, "||")?),
        RExpr::FnCall(f, _) => call(f, names)?,
        RExpr::Stmt(block) => match block.statements() {
            [Stmt::Expr(e)] => expr(e, names)?,
            [Stmt::FnCall(f, _)] => call(f, names)?,
            _ => return Err("uses a block".into()),
        },
        RExpr::Array(..) => return Err("uses an array outside `in`".into()),
        RExpr::InterpolatedString(..) => return Err("uses an interpolated string".into()),
        RExpr::CharConstant(..) => return Err("uses a character".into()),
        RExpr::MethodCall(f, _) => return Err(format!("calls the method `{}`", f.name)),
        RExpr::Dot(..) | RExpr::Index(..) | RExpr::Property(..) => {
            return Err("reads a property or an index".into())
        }
        RExpr::Coalesce(..) => return Err("uses `??`".into()),
        _ => return Err("uses an expression outside the vectorised subset".into()),
    })
}

fn constant(d: &Dynamic) -> Result<Node, String> {
    if let Some(x) = d.clone().try_cast::<Decimal>() {
        return Ok(Node::Dec(x));
    }
    if let Ok(b) = d.as_bool() {
        return Ok(Node::Bool(b));
    }
    if let Ok(n) = d.as_int() {
        return Ok(Node::Int(n));
    }
    if d.is_string() {
        return Ok(Node::Str(d.to_string()));
    }
    Err(format!("uses a constant of type {}", d.type_name()))
}

fn bools(xs: &[RExpr], names: &Names<'_>, op: &str) -> Result<Vec<Node>, String> {
    xs.iter()
        .map(|x| {
            let n = expr(x, names)?;
            if n.ty() == Ty::Bool {
                Ok(n)
            } else {
                Err(format!("`{op}` on a value that is not true or false"))
            }
        })
        .collect()
}

fn numeric(t: Ty) -> bool {
    matches!(t, Ty::Int | Ty::Dec)
}

fn call(f: &FnCallExpr, names: &Names<'_>) -> Result<Node, String> {
    let name = f.name.as_str();
    if f.is_qualified() {
        return Err(format!("calls `{name}` from a module"));
    }
    let helper = names
        .helpers
        .iter()
        .any(|h| h.name == name && h.params.len() == f.args.len());
    if helper && !f.is_operator_call() {
        return inline(f, names);
    }
    // `x in list` is parsed as `contains(list, x)`.
    if name == "contains" && f.args.len() == 2 && !f.is_operator_call() {
        let items: Vec<Node> = match &f.args[0] {
            RExpr::Array(xs, _) => xs
                .iter()
                .map(|x| expr(x, names))
                .collect::<Result<_, _>>()?,
            RExpr::DynamicConstant(d, _) if d.is_array() => d
                .clone()
                .into_array()
                .map_err(|t| t.to_string())?
                .iter()
                .map(constant)
                .collect::<Result<_, _>>()?,
            _ => return Err("uses `in` on something other than a list".into()),
        };
        let x = expr(&f.args[1], names)?;
        if items.iter().any(|i| i.ty() != x.ty() || !is_literal(i)) {
            return Err("uses `in` with a list of other types or of non-constants".into());
        }
        return Ok(Node::In(Box::new(x), items));
    }
    if !f.is_operator_call() {
        return Err(format!("calls `{name}`"));
    }
    let args: Vec<Node> = f
        .args
        .iter()
        .map(|a| expr(a, names))
        .collect::<Result<_, _>>()?;
    let unsupported = || Err(format!("uses `{name}` on these types"));
    match (name, args.as_slice()) {
        ("!", [x]) if x.ty() == Ty::Bool => Ok(Node::Not(Box::new(x.clone()))),
        ("-", [x]) if numeric(x.ty()) => Ok(Node::Neg(Box::new(x.clone()))),
        ("+", [x]) if numeric(x.ty()) => Ok(x.clone()),
        (op @ ("==" | "!=" | "<" | "<=" | ">" | ">="), [a, b]) => {
            let cmp = match op {
                "==" => Cmp::Eq,
                "!=" => Cmp::Ne,
                "<" => Cmp::Lt,
                "<=" => Cmp::Le,
                ">" => Cmp::Gt,
                _ => Cmp::Ge,
            };
            let ok = (numeric(a.ty()) && numeric(b.ty()))
                || (a.ty() == b.ty() && matches!(cmp, Cmp::Eq | Cmp::Ne));
            if !ok {
                return unsupported();
            }
            Ok(Node::Cmp(cmp, Box::new(a.clone()), Box::new(b.clone())))
        }
        (op @ ("+" | "-" | "*"), [a, b]) if numeric(a.ty()) && numeric(b.ty()) => {
            let op = match op {
                "+" => Arith::Add,
                "-" => Arith::Sub,
                _ => Arith::Mul,
            };
            Ok(Node::Arith(op, Box::new(a.clone()), Box::new(b.clone())))
        }
        _ => unsupported(),
    }
}

/// A call of a helper, replaced by its body with the arguments in place
/// of its parameters.
fn inline(f: &FnCallExpr, names: &Names<'_>) -> Result<Node, String> {
    let name = f.name.as_str();
    let helper = names
        .helpers
        .iter()
        .find(|h| h.name == name && h.params.len() == f.args.len())
        .expect("the caller found it");
    if names.depth >= MAX_INLINE {
        return Err(format!("calls helpers more than {MAX_INLINE} deep"));
    }
    let body = helper
        .body
        .as_ref()
        .map_err(|why| format!("calls the helper `{name}`, which {why}"))?;
    let args: Vec<(String, Node)> = helper
        .params
        .iter()
        .cloned()
        .zip(
            f.args
                .iter()
                .map(|a| expr(a, names))
                .collect::<Result<Vec<_>, _>>()?,
        )
        .collect();
    let inner = Names {
        flags: &[],
        with_segment: false,
        helpers: names.helpers,
        params: Some(&args),
        depth: names.depth + 1,
    };
    let node = match body.statements() {
        [Stmt::Expr(e)] => expr(e, &inner),
        [Stmt::FnCall(c, _)] => call(c, &inner),
        [Stmt::Return(Some(e), _, _)] => expr(e, &inner),
        _ => Err("is not one expression".into()),
    };
    node.map_err(|why| format!("calls the helper `{name}`, which {why}"))
}

fn is_literal(n: &Node) -> bool {
    matches!(
        n,
        Node::Bool(_) | Node::Int(_) | Node::Dec(_) | Node::Str(_)
    )
}

// ---------------------------------------------------------------------------
// The facts frame and evaluation.

/// A numeric column as 64-bit integers: value = stored / 10^scale, with the
/// smallest and largest stored value tonight.
#[derive(Debug, Clone, Copy)]
struct Num {
    scale: u32,
    lo: i128,
    hi: i128,
}

/// A numeric column's layout, or why it cannot be a column tonight.
type Layout = (usize, Result<Num, String>);

/// A number as a column expression and its layout.
type Scaled = (Expr, Num);

/// Every account's facts, one column per variable the conditions read.
pub struct Frame {
    df: DataFrame,
    /// Per variable index read: the numeric layout, or why it cannot be
    /// a column tonight.
    nums: Vec<Layout>,
}

/// The result of one condition for every account.
#[derive(Debug, Clone)]
pub enum Verdict {
    All(bool),
    Each(Vec<bool>),
}

impl Verdict {
    pub fn get(&self, row: usize) -> bool {
        match self {
            Verdict::All(b) => *b,
            Verdict::Each(v) => v[row],
        }
    }
}

/// What the vectorised path decided, by condition id; `None` runs in Rhai.
#[derive(Debug, Default)]
pub struct Verdicts {
    by_id: Vec<Option<Verdict>>,
    /// Conditions that translate but ran in Rhai tonight, and why.
    pub fell_back: Vec<(String, String)>,
}

impl Verdicts {
    pub fn get(&self, id: usize, row: usize) -> Option<bool> {
        self.by_id.get(id)?.as_ref().map(|v| v.get(row))
    }

    /// How many conditions were evaluated as columns.
    pub fn columns(&self) -> usize {
        self.by_id.iter().filter(|v| v.is_some()).count()
    }
}

fn column_name(var: usize) -> String {
    if var == SEGMENT {
        SEGMENT_VARIABLE.0.to_owned()
    } else {
        format!("v{var}")
    }
}

impl Frame {
    /// Builds the columns `vars` (variable indices, see [`Facts::value`])
    /// from every account's facts.
    ///
    /// `rows` are whatever the caller keeps per account; `facts` reads the
    /// account's facts from one (no copy of them all is made).
    pub fn build<'f, R: Sync>(
        rows: &[R],
        facts: impl Fn(&R) -> Facts<'f> + Sync + Copy,
        vars: &[usize],
    ) -> PolarsResult<Frame> {
        let n = rows.len();
        let vars: Vec<usize> = vars.iter().copied().filter(|v| *v != SEGMENT).collect();
        let scales: Vec<u32> = vars.iter().map(|&v| scale_of(rows, facts, v)).collect();
        let mut cols: Vec<Col<'f>> = vars
            .iter()
            .map(|&v| match var_ty(v) {
                Ty::Bool => Col::Bool(vec![false; n]),
                Ty::Str => Col::Str(vec![""; n]),
                Ty::Int | Ty::Dec => Col::Num(vec![0; n]),
            })
            .collect();
        // Read a slice of rows at a time, each row's facts made once for
        // all the columns: read a column at a time, every account and its
        // debtor were fetched once per column, 14 times a night for
        // retail-fr (BENCHMARKS.md, "2026-12-02 (fourth)").
        let mut slices: Vec<Vec<Part<'_, 'f>>> = (0..n.div_ceil(ROWS))
            .map(|_| Vec::with_capacity(cols.len()))
            .collect();
        for col in &mut cols {
            for (slice, part) in slices.iter_mut().zip(col.parts()) {
                slice.push(part);
            }
        }
        let ranges: Vec<Vec<Range>> = slices
            .into_par_iter()
            .enumerate()
            .map(|(k, mut parts)| {
                let start = k * ROWS;
                let mut ranges = vec![Range::EMPTY; vars.len()];
                for (j, r) in rows[start..(start + ROWS).min(n)].iter().enumerate() {
                    let f = facts(r);
                    for (c, part) in parts.iter_mut().enumerate() {
                        let value = f.value(vars[c]);
                        match part {
                            Part::Bool(out) => out[j] = matches!(value, Fact::Bool(true)),
                            Part::Str(out) => {
                                if let Fact::Str(s) = value {
                                    out[j] = s;
                                }
                            }
                            Part::Num(out) => out[j] = ranges[c].add(scaled(value, scales[c])),
                        }
                    }
                }
                ranges
            })
            .collect();
        let built: Vec<(Column, Option<Layout>)> = cols
            .into_par_iter()
            .enumerate()
            .map(|(c, col)| {
                let (var, name) = (vars[c], PlSmallStr::from(column_name(vars[c])));
                match col {
                    Col::Bool(v) => (BooleanChunked::from_slice(name, &v).into_column(), None),
                    Col::Str(v) => (
                        StringChunked::from_iter_values(name, v.into_iter()).into_column(),
                        None,
                    ),
                    Col::Num(v) => {
                        let range = ranges.iter().map(|r| r[c]).fold(Range::EMPTY, Range::merge);
                        let num = range.layout(var, scales[c], n);
                        (
                            Int64Chunked::from_vec(name, v).into_column(),
                            Some((var, num)),
                        )
                    }
                }
            })
            .collect();
        let mut columns = Vec::with_capacity(built.len() + 1);
        let mut nums = Vec::new();
        for (c, num) in built {
            columns.push(c);
            nums.extend(num);
        }
        if columns.is_empty() {
            columns.push(Int64Chunked::from_vec("rows".into(), vec![0; n]).into_column());
        }
        Ok(Frame {
            df: DataFrame::new(n, columns)?,
            nums,
        })
    }

    fn num(&self, var: usize) -> Result<Num, String> {
        self.nums
            .iter()
            .find(|(v, _)| *v == var)
            .map(|(_, n)| n.clone())
            .unwrap_or_else(|| Err(format!("variable {var} has no column")))
    }

    /// Evaluates every condition that has a plan; `segments` are the
    /// segment conditions' ids in order, with their names, from which the
    /// `segment` column is made when all of them are columns.
    pub fn evaluate(
        &self,
        conditions: &[&crate::script::Condition],
        segments: &[(usize, &str)],
    ) -> PolarsResult<Verdicts> {
        let max_id = conditions.iter().map(|c| c.id + 1).max().unwrap_or(0);
        let mut verdicts = Verdicts {
            by_id: vec![None; max_id],
            fell_back: Vec::new(),
        };
        let mut lowered = Vec::new();
        for c in conditions {
            let Ok(node) = &c.plan else { continue };
            match self.lower(node, None) {
                Ok(Lowered::Bool(e)) => lowered.push((c.id, e)),
                Ok(Lowered::Num(..)) | Ok(Lowered::Str(_)) => {
                    verdicts
                        .fell_back
                        .push((c.rule.clone(), "does not give true or false".into()));
                }
                Err(why) => verdicts.fell_back.push((c.rule.clone(), why)),
            }
        }
        // The segment, when every segment condition is a column.
        let chain = segments
            .iter()
            .map(|(id, name)| {
                lowered
                    .iter()
                    .find(|(i, _)| i == id)
                    .map(|(_, e)| (e.clone(), *name))
            })
            .collect::<Option<Vec<_>>>()
            .filter(|c| !c.is_empty());
        let mut lf = self.df.clone().lazy();
        let reads_segment = |id: usize| {
            conditions.iter().any(|c| {
                c.id == id
                    && c.plan.as_ref().is_ok_and(|n| {
                        let mut r = Vec::new();
                        n.reads(&mut r);
                        r.contains(&SEGMENT)
                    })
            })
        };
        match chain {
            Some(chain) => {
                // What reads the segment is lowered again, knowing the
                // segment conditions: `segment == "high_balance"` becomes
                // "not business, and high balance" over the conditions'
                // bitmaps, where the segment as text is a string chosen
                // per account, a column of a million made once per segment.
                let seg = Segments {
                    chain: &chain,
                    text_read: std::cell::Cell::new(false),
                };
                for (id, e) in lowered.iter_mut() {
                    if !reads_segment(*id) {
                        continue;
                    }
                    let c = conditions.iter().find(|c| c.id == *id).expect("lowered");
                    let node = c.plan.as_ref().expect("lowered");
                    match self.lower(node, Some(&seg)) {
                        Ok(Lowered::Bool(again)) => *e = again,
                        // The first lowering stands, and reads the text.
                        _ => seg.text_read.set(true),
                    }
                }
                if seg.text_read.get() {
                    let mut it = chain.iter().rev();
                    let (last_cond, last_name) = it.next().expect("not empty");
                    let mut e = when(last_cond.clone())
                        .then(lit(last_name.to_string()))
                        .otherwise(lit(""));
                    for (cond, name) in it {
                        e = when(cond.clone()).then(lit(name.to_string())).otherwise(e);
                    }
                    lf = lf.with_column(e.alias(SEGMENT_VARIABLE.0));
                }
            }
            None => {
                // Without a segment column, what reads `segment` runs in Rhai.
                lowered.retain(|(id, _)| {
                    if !reads_segment(*id) {
                        return true;
                    }
                    if let Some(c) = conditions.iter().find(|c| c.id == *id) {
                        verdicts.fell_back.push((
                            c.rule.clone(),
                            "reads `segment`, and a segment condition runs in Rhai".into(),
                        ));
                    }
                    false
                });
            }
        }
        if lowered.is_empty() {
            return Ok(verdicts);
        }
        let out = lf
            .select(
                lowered
                    .iter()
                    .map(|(id, e)| e.clone().alias(format!("c{id}")))
                    .collect::<Vec<_>>(),
            )
            .collect()?;
        let n = self.df.height();
        // Each column made a vector on a thread of the pool, read a bitmap
        // at a time: one after the other, a dozen columns of a million
        // held the other core idle.
        use rayon::prelude::*;
        let made: Vec<(usize, Verdict)> = lowered
            .par_iter()
            .map(|(id, _)| {
                let c = out.column(&format!("c{id}"))?.as_materialized_series();
                let b = c.bool()?;
                let v = if c.len() == 1 && n != 1 {
                    Verdict::All(b.get(0).unwrap_or(false))
                } else {
                    let mut each = Vec::with_capacity(c.len());
                    for arr in b.downcast_iter() {
                        // A null is false.
                        match arr.validity() {
                            Some(valid) => each.extend(
                                arr.values().iter().zip(valid.iter()).map(|(x, ok)| x && ok),
                            ),
                            None => each.extend(arr.values().iter()),
                        }
                    }
                    Verdict::Each(each)
                };
                Ok((*id, v))
            })
            .collect::<PolarsResult<_>>()?;
        for (id, v) in made {
            verdicts.by_id[id] = Some(v);
        }
        Ok(verdicts)
    }

    /// `node` as a column expression. With `seg`, the segment conditions
    /// are columns and `segment` compared with a name is read from them.
    fn lower(&self, node: &Node, seg: Option<&Segments>) -> Result<Lowered, String> {
        if let Some(seg) = seg {
            if let Some(e) = seg.compared(node) {
                return Ok(Lowered::Bool(e));
            }
        }
        Ok(match node {
            Node::Bool(b) => Lowered::Bool(lit(*b)),
            Node::Str(s) => Lowered::Str(lit(s.clone())),
            Node::Int(n) => Lowered::Num(
                int(*n),
                Num {
                    scale: 0,
                    lo: i128::from(*n),
                    hi: i128::from(*n),
                },
            ),
            Node::Dec(d) => {
                let m = d.mantissa();
                let m64 = i64::try_from(m).map_err(|_| format!("the constant {d} is too large"))?;
                Lowered::Num(
                    int(m64),
                    Num {
                        scale: d.scale(),
                        lo: m,
                        hi: m,
                    },
                )
            }
            Node::Var(i, ty) => {
                if *i == SEGMENT {
                    if let Some(seg) = seg {
                        seg.text_read.set(true);
                    }
                }
                let c = col(column_name(*i));
                match ty {
                    Ty::Bool => Lowered::Bool(c),
                    Ty::Str => Lowered::Str(c),
                    Ty::Int | Ty::Dec => Lowered::Num(c, self.num(*i)?),
                }
            }
            Node::Not(x) => Lowered::Bool(self.bool(x, seg)?.not()),
            Node::And(xs) => Lowered::Bool(self.fold(xs, seg, |a, b| a.and(b))?),
            Node::Or(xs) => Lowered::Bool(self.fold(xs, seg, |a, b| a.or(b))?),
            Node::In(x, items) => {
                let x = self.lower(x, seg)?;
                let mut acc: Option<Expr> = None;
                for item in items {
                    let e = compare(Cmp::Eq, x.clone(), self.lower(item, seg)?)?;
                    acc = Some(match acc {
                        None => e,
                        Some(a) => a.or(e),
                    });
                }
                Lowered::Bool(acc.unwrap_or_else(|| lit(false)))
            }
            Node::Cmp(op, a, b) => {
                Lowered::Bool(compare(*op, self.lower(a, seg)?, self.lower(b, seg)?)?)
            }
            Node::Neg(x) => {
                let (e, n) = self.num_of(x, seg)?;
                let n = checked(Num {
                    scale: n.scale,
                    lo: -n.hi,
                    hi: -n.lo,
                })?;
                Lowered::Num(int(0) - e, n)
            }
            Node::Arith(op, a, b) => {
                let (ea, na) = self.num_of(a, seg)?;
                let (eb, nb) = self.num_of(b, seg)?;
                match op {
                    Arith::Mul => {
                        let products = [na.lo * nb.lo, na.lo * nb.hi, na.hi * nb.lo, na.hi * nb.hi];
                        let n = checked(Num {
                            scale: na.scale + nb.scale,
                            lo: *products.iter().min().expect("four"),
                            hi: *products.iter().max().expect("four"),
                        })?;
                        Lowered::Num(ea * eb, n)
                    }
                    Arith::Add | Arith::Sub => {
                        let ((ea, na), (eb, nb)) = align((ea, na), (eb, nb))?;
                        let n = if *op == Arith::Add {
                            Num {
                                scale: na.scale,
                                lo: na.lo + nb.lo,
                                hi: na.hi + nb.hi,
                            }
                        } else {
                            Num {
                                scale: na.scale,
                                lo: na.lo - nb.hi,
                                hi: na.hi - nb.lo,
                            }
                        };
                        let n = checked(n)?;
                        Lowered::Num(if *op == Arith::Add { ea + eb } else { ea - eb }, n)
                    }
                }
            }
        })
    }

    fn bool(&self, n: &Node, seg: Option<&Segments>) -> Result<Expr, String> {
        match self.lower(n, seg)? {
            Lowered::Bool(e) => Ok(e),
            _ => Err("expected true or false".into()),
        }
    }

    fn num_of(&self, n: &Node, seg: Option<&Segments>) -> Result<(Expr, Num), String> {
        match self.lower(n, seg)? {
            Lowered::Num(e, n) => Ok((e, n)),
            _ => Err("expected a number".into()),
        }
    }

    fn fold(
        &self,
        xs: &[Node],
        seg: Option<&Segments>,
        f: impl Fn(Expr, Expr) -> Expr,
    ) -> Result<Expr, String> {
        let mut it = xs.iter();
        let first = self.bool(it.next().ok_or("an empty `&&` or `||`")?, seg)?;
        it.try_fold(first, |acc, x| Ok(f(acc, self.bool(x, seg)?)))
    }
}

/// The segment conditions as columns, in order, with their segments'
/// names: an account is in the first whose condition holds, or in none
/// (the empty name).
struct Segments<'a> {
    chain: &'a [(Expr, &'a str)],
    /// Whether something read the segment as text, which then needs the
    /// text column.
    text_read: std::cell::Cell<bool>,
}

impl Segments<'_> {
    /// Whether the account is in segment `name`.
    fn is(&self, name: &str) -> Expr {
        let mut none_before: Option<Expr> = None;
        let mut hit: Option<Expr> = None;
        for (cond, n) in self.chain {
            if *n == name {
                let here = match &none_before {
                    Some(b) => b.clone().and(cond.clone()),
                    None => cond.clone(),
                };
                hit = Some(match hit {
                    Some(h) => h.or(here),
                    None => here,
                });
            }
            let not = cond.clone().not();
            none_before = Some(match none_before {
                Some(b) => b.and(not),
                None => not,
            });
        }
        match (hit, name.is_empty()) {
            (Some(h), _) => h,
            (None, true) => none_before.unwrap_or_else(|| lit(true)),
            (None, false) => lit(false),
        }
    }

    /// `segment == "name"`, `segment != "name"` (either way round) and
    /// `segment in ["a", "b"]` as the segment conditions' columns; `None`
    /// for anything else that reads the segment.
    fn compared(&self, node: &Node) -> Option<Expr> {
        let name = |n: &Node| match n {
            Node::Str(s) => Some(s.clone()),
            _ => None,
        };
        let is_segment = |n: &Node| matches!(n, Node::Var(SEGMENT, _));
        match node {
            Node::Cmp(op @ (Cmp::Eq | Cmp::Ne), a, b) => {
                let lit_name = if is_segment(a) {
                    name(b)?
                } else if is_segment(b) {
                    name(a)?
                } else {
                    return None;
                };
                let e = self.is(&lit_name);
                Some(if *op == Cmp::Eq { e } else { e.not() })
            }
            Node::In(x, items) if is_segment(x) => {
                let names = items.iter().map(name).collect::<Option<Vec<_>>>()?;
                Some(
                    names
                        .iter()
                        .map(|n| self.is(n))
                        .reduce(|a, b| a.or(b))
                        .unwrap_or_else(|| lit(false)),
                )
            }
            _ => None,
        }
    }
}

#[derive(Clone)]
enum Lowered {
    Bool(Expr),
    Str(Expr),
    Num(Expr, Num),
}

const LIMIT: i128 = i64::MAX as i128;

/// A 64-bit integer literal. A bare `lit(n)` is a "dynamic" integer that
/// Polars may compute with in 32 bits when every operand is a literal, and
/// `6442 * 100000` would wrap.
fn int(n: i64) -> Expr {
    lit(n).cast(DataType::Int64)
}

fn checked(n: Num) -> Result<Num, String> {
    if n.lo < -LIMIT || n.hi > LIMIT {
        Err("its arithmetic could leave 64 bits on tonight's values".into())
    } else {
        Ok(n)
    }
}

/// Brings two numbers to the same scale, exactly.
fn align(a: Scaled, b: Scaled) -> Result<(Scaled, Scaled), String> {
    let scale = a.1.scale.max(b.1.scale);
    let up = |(e, n): Scaled| -> Result<Scaled, String> {
        if n.scale == scale {
            return Ok((e, n));
        }
        let f = 10i128
            .checked_pow(scale - n.scale)
            .filter(|f| *f <= LIMIT)
            .ok_or("its numbers differ too much in decimal places")?;
        let n = checked(Num {
            scale,
            lo: n.lo * f,
            hi: n.hi * f,
        })?;
        Ok((e * int(f as i64), n))
    };
    Ok((up(a)?, up(b)?))
}

fn compare(op: Cmp, a: Lowered, b: Lowered) -> Result<Expr, String> {
    let (ea, eb) = match (a, b) {
        (Lowered::Num(ea, na), Lowered::Num(eb, nb)) => {
            let ((ea, _), (eb, _)) = align((ea, na), (eb, nb))?;
            (ea, eb)
        }
        (Lowered::Str(ea), Lowered::Str(eb)) | (Lowered::Bool(ea), Lowered::Bool(eb)) => (ea, eb),
        _ => return Err("compares values of different types".into()),
    };
    Ok(match op {
        Cmp::Eq => ea.eq(eb),
        Cmp::Ne => ea.neq(eb),
        Cmp::Lt => ea.lt(eb),
        Cmp::Le => ea.lt_eq(eb),
        Cmp::Gt => ea.gt(eb),
        Cmp::Ge => ea.gt_eq(eb),
    })
}

fn var_ty(var: usize) -> Ty {
    match VARIABLES.get(var).map(|v| v.1) {
        Some("string") => Ty::Str,
        Some("bool") | None => Ty::Bool,
        Some("int") => Ty::Int,
        Some(_) => Ty::Dec,
    }
}

/// Rows of the vectorised columns read together: the facts of this many
/// accounts are made at a time, on one thread.
const ROWS: usize = 1 << 14;

/// A column being filled, in its type.
enum Col<'f> {
    Bool(Vec<bool>),
    Str(Vec<&'f str>),
    Num(Vec<i64>),
}

/// One slice of rows of a [`Col`], filled by one thread.
enum Part<'c, 'f> {
    Bool(&'c mut [bool]),
    Str(&'c mut [&'f str]),
    Num(&'c mut [i64]),
}

impl<'f> Col<'f> {
    /// The column cut in slices of [`ROWS`] rows.
    fn parts(&mut self) -> Vec<Part<'_, 'f>> {
        match self {
            Col::Bool(v) => v.chunks_mut(ROWS).map(Part::Bool).collect(),
            Col::Str(v) => v.chunks_mut(ROWS).map(Part::Str).collect(),
            Col::Num(v) => v.chunks_mut(ROWS).map(Part::Num).collect(),
        }
    }
}

/// The decimal places of a numeric variable's column: integers as they
/// are, money in cents, other decimals (a score) at the most places any
/// account has. A variable gives one kind of fact for every account; only
/// free decimals need a pass to find their scale.
fn scale_of<'f, R>(rows: &[R], facts: impl Fn(&R) -> Facts<'f>, var: usize) -> u32 {
    match rows.first().map(|r| facts(r).value(var)) {
        Some(Fact::Decimal(_)) => rows
            .iter()
            .map(|r| match facts(r).value(var) {
                Fact::Decimal(d) => d.scale(),
                _ => 0,
            })
            .max()
            .unwrap_or(0),
        Some(Fact::Money(_)) => 2,
        _ => 0,
    }
}

/// A numeric fact at `scale` decimal places, `None` when that overflows.
fn scaled(value: Fact<'_>, scale: u32) -> Option<i128> {
    match value {
        Fact::Int(x) => 10i128.checked_pow(scale).map(|p| i128::from(x) * p),
        Fact::Money(c) => 10i128
            .checked_pow(scale.saturating_sub(2))
            .map(|p| i128::from(c) * p),
        Fact::Decimal(d) => 10i128
            .checked_pow(scale - d.scale())
            .and_then(|p| d.mantissa().checked_mul(p)),
        _ => Some(0),
    }
}

/// The smallest and largest values of a numeric column (for the overflow
/// checks of its expressions), and whether a value did not fit 64 bits.
#[derive(Debug, Clone, Copy)]
struct Range {
    lo: i128,
    hi: i128,
    overflow: bool,
}

impl Range {
    const EMPTY: Range = Range {
        lo: i128::MAX,
        hi: i128::MIN,
        overflow: false,
    };

    /// Counts `v` in and gives what the column holds for it (0 when it
    /// does not fit: the column is then not used).
    fn add(&mut self, v: Option<i128>) -> i64 {
        match v.filter(|v| (-LIMIT..=LIMIT).contains(v)) {
            Some(v) => {
                self.lo = self.lo.min(v);
                self.hi = self.hi.max(v);
                v as i64
            }
            None => {
                self.overflow = true;
                0
            }
        }
    }

    fn merge(a: Range, b: Range) -> Range {
        Range {
            lo: a.lo.min(b.lo),
            hi: a.hi.max(b.hi),
            overflow: a.overflow || b.overflow,
        }
    }

    fn layout(self, var: usize, scale: u32, n: usize) -> Result<Num, String> {
        if self.overflow {
            return Err(format!(
                "`{}` has values that do not fit 64 bits at {scale} decimal places tonight",
                VARIABLES.get(var).map_or("?", |v| v.0)
            ));
        }
        let (lo, hi) = if n == 0 { (0, 0) } else { (self.lo, self.hi) };
        Ok(Num { scale, lo, hi })
    }
}
