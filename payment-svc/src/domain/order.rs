use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Failure, PaymentError, StepState};

macro_rules! positive_id {
    ($name:ident, $field:literal) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(i64);

        impl $name {
            pub fn parse(raw: i64) -> Result<Self, PaymentError> {
                if raw > 0 {
                    Ok(Self(raw))
                } else {
                    Err(PaymentError::validation($field, concat!($field, " must be a positive integer")))
                }
            }

            pub fn get(self) -> i64 {
                self.0
            }
        }
    };
}

positive_id!(UserId, "userId");
positive_id!(ProductId, "productId");
positive_id!(UserCouponId, "userCouponId");

/// The id of an order, which is also its saga's id: a UUID. Derived from the checkout's
/// Idempotency-Key (UUID v5 of the key's scope and value), so a retried checkout is the
/// same saga and cannot become a second order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OrderId(String);

/// Namespace of the v5 ids; any fixed UUID works, this one is ours.
const ORDER_NAMESPACE: Uuid = Uuid::from_u128(0x6d65_7368_2d6f_7264_6572_2d69_6473_0001);

impl OrderId {
    pub fn parse(raw: &str) -> Result<Self, PaymentError> {
        Uuid::parse_str(raw)
            .map(|id| Self(id.hyphenated().to_string()))
            .map_err(|_| PaymentError::validation("orderId", "orderId must be a UUID"))
    }

    pub fn from_idempotency_key(scope: &str, key: &str) -> Self {
        let name = format!("{scope}\n{key}");
        Self(Uuid::new_v5(&ORDER_NAMESPACE, name.as_bytes()).hyphenated().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Units of one order line, 1..=1,000 (API.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quantity(i64);

impl Quantity {
    pub fn parse(raw: i64) -> Result<Self, PaymentError> {
        if (1..=1000).contains(&raw) {
            Ok(Self(raw))
        } else {
            Err(PaymentError::validation("items.quantity", "quantity must be 1..=1000"))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestedLine {
    pub product: ProductId,
    pub quantity: Quantity,
}

/// A checkout as asked: 1..=50 lines, no product twice, an optional coupon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaceOrder {
    user: UserId,
    lines: Vec<RequestedLine>,
    coupon: Option<UserCouponId>,
}

pub const MAX_LINES: usize = 50;

impl PlaceOrder {
    pub fn parse(user: i64, lines: &[(i64, i64)], coupon: Option<i64>) -> Result<Self, PaymentError> {
        let user = UserId::parse(user)?;
        if lines.is_empty() || lines.len() > MAX_LINES {
            return Err(PaymentError::validation("items", "items must hold 1..=50 lines"));
        }
        let mut parsed = Vec::with_capacity(lines.len());
        for &(product, quantity) in lines {
            let product = ProductId::parse(product)
                .map_err(|_| PaymentError::validation("items.productId", "productId must be a positive integer"))?;
            if parsed.iter().any(|l: &RequestedLine| l.product == product) {
                return Err(PaymentError::validation("items", "a productId appears twice"));
            }
            parsed.push(RequestedLine { product, quantity: Quantity::parse(quantity)? });
        }
        let coupon = coupon.map(UserCouponId::parse).transpose()?;
        Ok(Self { user, lines: parsed, coupon })
    }

    pub fn user(&self) -> UserId {
        self.user
    }

    pub fn lines(&self) -> &[RequestedLine] {
        &self.lines
    }

    pub fn coupon(&self) -> Option<UserCouponId> {
        self.coupon
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderStatus {
    Pending,
    Completed,
    Failed,
    Cancelling,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
            Self::Cancelling => "CANCELLING",
            Self::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Pending, Self::Completed, Self::Failed, Self::Cancelling, Self::Cancelled]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }

    /// COMPLETED and FAILED end a checkout; CANCELLED ends a cancel.
    pub fn is_settled(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

/// A line of a stored order; the unit price is known once stock was reserved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub product_id: i64,
    pub quantity: i64,
    pub unit_price: i64,
}

impl OrderLine {
    pub fn amount(&self) -> i64 {
        self.unit_price.saturating_mul(self.quantity)
    }
}

/// An order as the API shows it (and as an idempotent answer stores it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: String,
    pub user_id: i64,
    pub status: OrderStatus,
    pub lines: Vec<OrderLine>,
    pub total_amount: i64,
    pub discount_amount: i64,
    pub paid_amount: i64,
    pub user_coupon_id: Option<i64>,
    pub failure: Option<Failure>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub steps: Vec<StepState>,
}

impl Order {
    /// A checkout as created: PENDING, every planned step PENDING, amounts not known yet.
    pub fn new_checkout(id: &OrderId, request: &PlaceOrder, at: DateTime<Utc>) -> Self {
        Self {
            id: id.as_str().to_owned(),
            user_id: request.user().get(),
            status: OrderStatus::Pending,
            lines: request
                .lines()
                .iter()
                .map(|l| OrderLine { product_id: l.product.get(), quantity: l.quantity.get(), unit_price: 0 })
                .collect(),
            total_amount: 0,
            discount_amount: 0,
            paid_amount: 0,
            user_coupon_id: request.coupon().map(UserCouponId::get),
            failure: None,
            version: 1,
            created_at: at,
            updated_at: at,
            steps: super::StepName::plan(request.coupon().is_some())
                .into_iter()
                .enumerate()
                .map(|(seq, name)| StepState {
                    name,
                    status: super::StepStatus::Pending,
                    attempts: i32::from(seq == 0),
                    last_error: None,
                    updated_at: at,
                })
                .collect(),
        }
    }
}

/// `limit` of an order listing, 1..=100, default 20.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListLimit(u64);

impl ListLimit {
    pub fn parse(raw: i64) -> Result<Self, PaymentError> {
        match raw {
            0 => Ok(Self(20)),
            1..=100 => Ok(Self(raw as u64)),
            _ => Err(PaymentError::validation("limit", "limit must be 1..=100")),
        }
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_ids_derive_from_the_key_and_its_scope() {
        let a = OrderId::from_idempotency_key("payment.place_order/7", "k1");
        assert_eq!(a, OrderId::from_idempotency_key("payment.place_order/7", "k1"));
        assert_ne!(a, OrderId::from_idempotency_key("payment.place_order/8", "k1"));
        assert_eq!(OrderId::parse(a.as_str()).unwrap(), a);
        assert!(OrderId::parse("not-a-uuid").is_err());
    }

    #[test]
    fn a_checkout_is_parsed_whole() {
        assert!(PlaceOrder::parse(1, &[(1, 1)], None).is_ok());
        assert!(PlaceOrder::parse(0, &[(1, 1)], None).is_err());
        assert!(PlaceOrder::parse(1, &[], None).is_err());
        assert!(PlaceOrder::parse(1, &[(1, 1), (1, 2)], None).is_err());
        assert!(PlaceOrder::parse(1, &[(1, 1001)], None).is_err());
        assert!(PlaceOrder::parse(1, &[(1, 1)], Some(0)).is_err());
        let lines: Vec<(i64, i64)> = (1..=51).map(|p| (p, 1)).collect();
        assert!(PlaceOrder::parse(1, &lines, None).is_err());
        assert!(PlaceOrder::parse(1, &lines[..50], None).is_ok());
    }
}
