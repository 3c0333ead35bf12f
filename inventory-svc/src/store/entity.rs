//! sea-orm entity of the `product` table (see the migration for constraints).

pub mod product {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "product")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub name: String,
        pub price: i64,
        pub stock: i64,
        pub version: i64,
        pub created_at: DateTime,
        pub updated_at: DateTime,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    impl From<Model> for crate::domain::Product {
        fn from(m: Model) -> Self {
            Self {
                id: m.id,
                name: m.name,
                price: m.price,
                stock: m.stock,
                version: m.version,
                created_at: m.created_at.and_utc(),
                updated_at: m.updated_at.and_utc(),
            }
        }
    }
}
