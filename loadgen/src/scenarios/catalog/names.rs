//! Product names and search terms for the catalog scenarios: shop-like, half English and half
//! Korean, generated from the product's index so a million of them cost no storage and two
//! runs load the same catalog.
//!
//! A name is `<brand> <adjective> <noun> <model>` (`Logitech 무선 Keyboard KX-4821`). The
//! terms searched are what a shopper types: a noun (1 in 40 products), an adjective and a
//! noun together (1 in 800), a model prefix (1 in 6,760), in either language and case.

const BRANDS: [&str; 20] = [
    "Samsung",
    "LG",
    "Apple",
    "Sony",
    "Logitech",
    "Razer",
    "Dell",
    "Lenovo",
    "Asus",
    "Xiaomi",
    "삼성",
    "엘지",
    "한성",
    "다이슨",
    "쿠쿠",
    "Philips",
    "Bose",
    "Anker",
    "Canon",
    "Nikon",
];
const ADJECTIVES: [&str; 20] = [
    "Wireless",
    "Mechanical",
    "Portable",
    "Smart",
    "Ultra",
    "Mini",
    "Pro",
    "Gaming",
    "Silent",
    "Compact",
    "무선",
    "기계식",
    "휴대용",
    "스마트",
    "초경량",
    "미니",
    "프리미엄",
    "게이밍",
    "저소음",
    "대용량",
];
const NOUNS: [&str; 40] = [
    "Keyboard",
    "Mouse",
    "Monitor",
    "Headphones",
    "Speaker",
    "Laptop",
    "Tablet",
    "Charger",
    "Camera",
    "Watch",
    "Router",
    "Microphone",
    "Webcam",
    "Printer",
    "Projector",
    "Vacuum",
    "Blender",
    "Kettle",
    "Fan",
    "Lamp",
    "키보드",
    "마우스",
    "모니터",
    "헤드폰",
    "스피커",
    "노트북",
    "태블릿",
    "충전기",
    "카메라",
    "시계",
    "공유기",
    "마이크",
    "웹캠",
    "프린터",
    "프로젝터",
    "청소기",
    "믹서기",
    "전기포트",
    "선풍기",
    "조명",
];

/// splitmix64: a stateless, well-mixed hash of an index.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn pick<'a>(list: &[&'a str], seed: u64) -> &'a str {
    list[(seed % list.len() as u64) as usize]
}

fn model(seed: u64) -> String {
    let letter = |n: u64| char::from(b'A' + (n % 26) as u8);
    format!("{}{}-{:04}", letter(seed), letter(seed / 26), (seed / 676) % 10_000)
}

/// The name of product number `i` of a catalog.
pub fn product_name(i: u64) -> String {
    let h = mix(i);
    format!("{} {} {} {}", pick(&BRANDS, h), pick(&ADJECTIVES, h >> 8), pick(&NOUNS, h >> 16), model(mix(h)))
}

/// The price of product number `i`: 1,000 to 2,000,000 won in steps of 100.
pub fn product_price(i: u64) -> i64 {
    1_000 + (mix(i ^ 0x5eed) % 19_991) as i64 * 100
}

/// Search term number `n`: a noun, an adjective and a noun, or a model prefix, in turn; English
/// ones in lower case, as people type them.
pub fn search_term(n: u64) -> String {
    let h = mix(n ^ 0x7e57);
    match n % 3 {
        0 => pick(&NOUNS, h).to_lowercase(),
        1 => format!("{} {}", pick(&ADJECTIVES, h), pick(&NOUNS, h >> 8)).to_lowercase(),
        _ => model(h).chars().take(4).collect::<String>().to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_varied() {
        assert_eq!(product_name(7), product_name(7));
        let distinct: std::collections::HashSet<String> = (0..1_000).map(product_name).collect();
        assert!(distinct.len() > 990, "{}", distinct.len());
        assert!((0..100).all(|i| (1_000..=2_000_000).contains(&product_price(i))));
    }

    #[test]
    fn terms_are_substrings_of_some_names_ignoring_case() {
        let names: Vec<String> = (0..100_000).map(|i| product_name(i).to_lowercase()).collect();
        for n in 0..30 {
            let term = search_term(n);
            assert!(names.iter().any(|name| name.contains(&term)), "no name holds {term:?}");
        }
    }
}
