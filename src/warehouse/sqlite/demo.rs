//! The demo warehouse: a small shop, built in memory at start.
//!
//! Tables `CUSTOMERS`, `PRODUCTS`, `ORDERS`, `ORDER_ITEMS` and the view
//! `ORDER_TOTALS`, with integers, exact decimals (`DECIMAL(p,s)`), doubles,
//! dates, timestamps with and without time zone, NULLs, text and a blob,
//! related by keys, enough to be worth asking questions of. The rows come
//! from a fixed-seed generator, so every start holds the same data.

use rusqlite::{Connection, params};

const SCHEMA: &str = "
CREATE TABLE customers (
    customer_id   INTEGER PRIMARY KEY,
    name          TEXT NOT NULL,
    email         TEXT,
    country       TEXT NOT NULL,
    signed_up_at  TIMESTAMP_TZ NOT NULL,
    credit_limit  DECIMAL(12,2)
);
CREATE TABLE products (
    product_id    INTEGER PRIMARY KEY,
    sku           TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    category      TEXT NOT NULL,
    unit_price    DECIMAL(10,2) NOT NULL,
    weight_kg     DOUBLE,
    thumbnail     BLOB
);
CREATE TABLE orders (
    order_id      INTEGER PRIMARY KEY,
    customer_id   INTEGER NOT NULL REFERENCES customers(customer_id),
    order_date    DATE NOT NULL,
    status        TEXT NOT NULL,
    shipped_at    TIMESTAMP_NTZ,
    note          TEXT
);
CREATE TABLE order_items (
    order_id      INTEGER NOT NULL REFERENCES orders(order_id),
    line_no       INTEGER NOT NULL,
    product_id    INTEGER NOT NULL REFERENCES products(product_id),
    quantity      INTEGER NOT NULL,
    unit_price    DECIMAL(10,2) NOT NULL,
    discount      DECIMAL(5,4) NOT NULL DEFAULT 0,
    PRIMARY KEY (order_id, line_no)
);
CREATE VIEW order_totals AS
SELECT o.order_id,
       c.name AS customer,
       c.country,
       o.order_date,
       o.status,
       COUNT(*) AS lines,
       SUM(i.quantity) AS units,
       ROUND(SUM(i.quantity * i.unit_price * (1 - i.discount)), 2) AS total
FROM orders o
JOIN customers c ON c.customer_id = o.customer_id
JOIN order_items i ON i.order_id = o.order_id
GROUP BY o.order_id, c.name, c.country, o.order_date, o.status;
";

const FIRST: [&str; 12] = [
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "John",
    "Katherine",
    "Niklaus",
    "Radia",
    "Tim",
];
const LAST: [&str; 10] = [
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Backus", "Johnson",
    "Wirth",
];
const COUNTRIES: [(&str, &str); 6] = [
    ("DE", "+01:00"),
    ("US", "-05:00"),
    ("JP", "+09:00"),
    ("BR", "-03:00"),
    ("IN", "+05:30"),
    ("GB", "+00:00"),
];
const PRODUCTS: [(&str, &str, u32); 15] = [
    ("Mechanical keyboard", "hardware", 12_900),
    ("USB-C cable 2m", "hardware", 1_499),
    ("27-inch monitor", "hardware", 32_950),
    ("Laptop stand", "hardware", 4_990),
    ("Noise-cancelling headphones", "audio", 24_900),
    ("Conference speaker", "audio", 8_999),
    ("Studio microphone", "audio", 15_900),
    ("SQL pocket guide", "books", 1_999),
    ("Distributed systems textbook", "books", 6_450),
    ("Data warehouse design", "books", 5_499),
    ("Warehouse credits (100)", "services", 10_000),
    ("Support plan, monthly", "services", 29_900),
    ("Onboarding workshop", "services", 120_000),
    ("Sticker pack", "merch", 399),
    ("Hoodie", "merch", 5_900),
];
const STATUSES: [&str; 4] = ["delivered", "shipped", "processing", "cancelled"];

/// A fixed-seed generator (xorshift), so the demo is the same on every start.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Money in cents as exact decimal text.
fn cents(c: u64) -> String {
    format!("{}.{:02}", c / 100, c % 100)
}

/// A date `day` days after 2025-01-01 (days within 2025-2026).
fn date(day: u64) -> String {
    const MONTHS: [u64; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let mut year = 2025;
    let mut d = day % 730;
    if d >= 365 {
        year = 2026;
        d -= 365;
    }
    let mut month = 0;
    while d >= MONTHS[month] {
        d -= MONTHS[month];
        month += 1;
    }
    format!("{year}-{:02}-{:02}", month + 1, d + 1)
}

/// Creates and fills the demo tables on `conn` (one seed: the same data
/// every time).
pub fn build(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA)?;
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    let tx = conn.unchecked_transaction()?;
    customers(&tx, &mut rng)?;
    products(&tx, &mut rng)?;
    orders(&tx, &mut rng)?;
    tx.commit()
}

/// 24 customers, some without an email or a credit limit.
fn customers(tx: &Connection, rng: &mut Rng) -> rusqlite::Result<()> {
    for id in 1..=24u64 {
        let first = FIRST[rng.below(FIRST.len() as u64) as usize];
        let last = LAST[rng.below(LAST.len() as u64) as usize];
        let (country, offset) = COUNTRIES[rng.below(COUNTRIES.len() as u64) as usize];
        let email = (id % 7 != 0).then(|| {
            format!(
                "{}.{}{id}@example.com",
                first.to_lowercase(),
                last.to_lowercase()
            )
        });
        let signed_up = format!(
            "{}T{:02}:{:02}:{:02}{offset}",
            date(rng.below(300)),
            rng.below(24),
            rng.below(60),
            rng.below(60)
        );
        let limit = (id % 5 != 0).then(|| cents(100_000 + rng.below(900_000)));
        tx.execute(
            "INSERT INTO customers VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                id as i64,
                format!("{first} {last}"),
                email,
                country,
                signed_up,
                limit
            ],
        )?;
    }
    Ok(())
}

/// The catalog of products.
fn products(tx: &Connection, rng: &mut Rng) -> rusqlite::Result<()> {
    for (i, (name, category, price)) in PRODUCTS.iter().enumerate() {
        let id = i as u64 + 1;
        let weight = (*category != "services").then(|| (rng.below(5_000) as f64 + 50.0) / 1000.0);
        let thumbnail: Option<Vec<u8>> =
            (id % 4 == 1).then(|| vec![0x89, b'P', b'N', b'G', id as u8]);
        tx.execute(
            "INSERT INTO products VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                id as i64,
                format!("SKU-{:04}", 1000 + id * 7),
                name,
                category,
                cents(u64::from(*price)),
                weight,
                thumbnail
            ],
        )?;
    }
    Ok(())
}

/// 200 orders of one to four lines each.
fn orders(tx: &Connection, rng: &mut Rng) -> rusqlite::Result<()> {
    for order in 1..=200u64 {
        let customer = 1 + rng.below(24);
        let day = rng.below(700);
        let status = STATUSES[rng.below(STATUSES.len() as u64) as usize];
        let shipped = matches!(status, "delivered" | "shipped").then(|| {
            format!(
                "{}T{:02}:{:02}:00",
                date(day + 1 + rng.below(3)),
                8 + rng.below(10),
                rng.below(60)
            )
        });
        let note = (order % 9 == 0).then_some("leave at the front desk");
        tx.execute(
            "INSERT INTO orders VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                order as i64,
                customer as i64,
                date(day),
                status,
                shipped,
                note
            ],
        )?;
        for line in 1..=(1 + rng.below(4)) {
            let product = 1 + rng.below(PRODUCTS.len() as u64);
            let price = PRODUCTS[(product - 1) as usize].2;
            let discount = match rng.below(10) {
                0 => "0.1000",
                1 => "0.0500",
                _ => "0.0000",
            };
            tx.execute(
                "INSERT INTO order_items VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    order as i64,
                    line as i64,
                    product as i64,
                    (1 + rng.below(5)) as i64,
                    cents(u64::from(price)),
                    discount
                ],
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_builds_and_relates() {
        let conn = Connection::open_in_memory().expect("memory db");
        build(&conn).expect("build");
        let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).expect(sql);
        assert_eq!(count("SELECT COUNT(*) FROM customers"), 24);
        assert_eq!(count("SELECT COUNT(*) FROM orders"), 200);
        assert!(count("SELECT COUNT(*) FROM order_items") >= 200);
        assert_eq!(count("SELECT COUNT(*) FROM order_totals"), 200);
        assert!(count("SELECT COUNT(*) FROM customers WHERE email IS NULL") > 0);
        assert!(count("SELECT COUNT(*) FROM orders WHERE shipped_at IS NULL") > 0);
        assert_eq!(
            count(
                "SELECT COUNT(*) FROM orders o LEFT JOIN customers c USING (customer_id) WHERE c.name IS NULL"
            ),
            0
        );
        assert_eq!(date(0), "2025-01-01");
        assert_eq!(date(59), "2025-03-01");
        assert_eq!(date(365), "2026-01-01");
    }
}
