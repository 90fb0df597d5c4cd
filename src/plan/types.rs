//! How pack types are represented in Arrow, and exact decimals as scaled
//! integers (points and scores are summed exactly, whatever the order).

use arrow::datatypes::DataType;
use rust_decimal::Decimal;

use crate::pack::Type;

/// Scale of every decimal in the engine (points, score): 10 places.
pub const DECIMAL_SCALE: i8 = 10;
pub const DECIMAL_PRECISION: u8 = 38;

/// The Arrow type the engine uses for a pack type.
pub fn arrow_type(ty: Type) -> DataType {
    match ty {
        Type::Bool => DataType::Boolean,
        Type::Int => DataType::Int64,
        Type::Float => DataType::Float64,
        Type::Decimal => DataType::Decimal128(DECIMAL_PRECISION, DECIMAL_SCALE),
        Type::Str => DataType::Utf8,
        Type::Date => DataType::Date32,
        Type::Null => DataType::Null,
    }
}

/// A decimal as the engine's scaled integer (exact for up to 10 places).
pub fn decimal_to_scaled(d: Decimal) -> Option<i128> {
    let mut d = d.normalize();
    if d.scale() > DECIMAL_SCALE as u32 {
        return None;
    }
    d.rescale(DECIMAL_SCALE as u32);
    Some(d.mantissa())
}

/// The decimal of a scaled integer. Scores are bounded by the checker
/// (points within ±10^12), so they always fit; a value that does not fit
/// a decimal saturates rather than panics.
pub fn scaled_to_decimal(v: i128) -> Decimal {
    Decimal::try_from_i128_with_scale(v, DECIMAL_SCALE as u32)
        .unwrap_or(if v < 0 { Decimal::MIN } else { Decimal::MAX })
        .normalize()
}
