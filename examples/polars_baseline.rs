//! The speed baseline for a night: a bare Polars scan + group-by of a ledger
//! (typed inference, dates parsed, amounts as floats, no validation), the
//! columnar floor that `dunning run` is measured against.
//!
//! cargo run --release --example polars_baseline -- LEDGER.csv YYYY-MM-DD

use polars::prelude::*;
use std::time::Instant;

fn main() -> PolarsResult<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("ledger path");
    let as_of = args.next().expect("as-of date");
    let d = dunning::dates::to_days(dunning::dates::parse_date(&as_of).expect("YYYY-MM-DD"));
    let t = Instant::now();
    let df = LazyCsvReader::new(PlRefPath::from(path.as_str()))
        .with_has_header(true)
        .with_try_parse_dates(true)
        .finish()?
        .with_column((lit(d) - col("due_on").cast(DataType::Int32)).alias("dpd"))
        .with_column(
            col("open_amount")
                .gt(lit(0.0))
                .and(col("dpd").gt(lit(3)))
                .alias("is_overdue"),
        )
        .group_by([col("debtor_id"), col("currency")])
        .agg([
            col("open_amount")
                .filter(col("is_overdue"))
                .sum()
                .alias("overdue"),
            col("open_amount").sum().alias("open"),
            col("dpd").filter(col("is_overdue")).max().alias("max_dpd"),
        ])
        .collect()?;
    println!(
        "polars baseline: {} accounts in {} ms",
        df.height(),
        t.elapsed().as_millis()
    );
    Ok(())
}
