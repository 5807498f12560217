"""Regenerate datasets/catalogue/products.jsonl, the shop's product catalogue (data, committed).

    .venv/bin/python scripts/make_catalogue.py

Run once to create the catalogue; the committed file is the source of truth afterwards (edit it
by hand or re-run this with a new seed). Brands are real, models and prices are illustrative.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "datasets" / "catalogue" / "products.jsonl"
SEED = 20261125

COLOURS = {
    "red": "红色",
    "black": "黑色",
    "white": "白色",
    "blue": "蓝色",
    "green": "绿色",
    "grey": "灰色",
    "pink": "粉色",
    "purple": "紫色",
    "gold": "金色",
    "silver": "银色",
    "yellow": "黄色",
    "orange": "橙色",
    "brown": "棕色",
    "beige": "米色",
}

# category: (zh name, en name, product nouns [(zh, en)], brands [(zh, en)], lines, price range, sizes, colours, specs)
CATEGORIES = {
    "phone": {
        "zh": "手机",
        "en": "Phones",
        "nouns": [("手机", "phone")],
        "brands": [
            ("小米", "Xiaomi"),
            ("红米", "Redmi"),
            ("华为", "Huawei"),
            ("荣耀", "Honor"),
            ("苹果", "Apple"),
            ("OPPO", "OPPO"),
            ("vivo", "vivo"),
            ("一加", "OnePlus"),
            ("三星", "Samsung"),
            ("真我", "realme"),
        ],
        "lines": ["{b} {n}", "{b} {n} Pro", "{b} {n} Ultra", "{b} {n}s", "{b} Note {n}", "{b} {n} Lite"],
        "numbers": [12, 13, 14, 15, 50, 60, 70, 80, 90, 100],
        "price": (799, 9999),
        "step": 100,
        "ending": -1,
        "sizes": ["8GB+128GB", "8GB+256GB", "12GB+256GB", "12GB+512GB", "16GB+1TB"],
        "colours": ["black", "white", "blue", "green", "purple", "red", "gold", "silver"],
        "specs": lambda r: {
            "screen_inches": r.choice([6.1, 6.36, 6.6, 6.7, 6.78, 6.82]),
            "battery_mah": r.choice([4500, 5000, 5500, 6000]),
            "camera_mp": r.choice([48, 50, 64, 108, 200]),
        },
        "count": 40,
    },
    "laptop": {
        "zh": "笔记本电脑",
        "en": "Laptops",
        "nouns": [("笔记本电脑", "laptop")],
        "brands": [
            ("联想", "Lenovo"),
            ("华为", "Huawei"),
            ("苹果", "Apple"),
            ("戴尔", "Dell"),
            ("惠普", "HP"),
            ("华硕", "ASUS"),
            ("小米", "Xiaomi"),
            ("荣耀", "Honor"),
        ],
        "lines": ["{b} Book {n}", "{b} Pro {n}", "{b} Air {n}", "{b} X{n}", "{b} Slim {n}"],
        "numbers": [13, 14, 15, 16],
        "price": (2999, 19999),
        "step": 100,
        "ending": -1,
        "sizes": ["16GB+512GB", "16GB+1TB", "32GB+1TB", "8GB+256GB"],
        "colours": ["grey", "silver", "black", "blue", "white"],
        "specs": lambda r: {
            "screen_inches": r.choice([13.3, 14, 15.6, 16]),
            "weight_kg": r.choice([1.2, 1.3, 1.4, 1.6, 1.8, 2.1]),
            "cpu": r.choice(
                ["Intel Core Ultra 5", "Intel Core Ultra 7", "AMD Ryzen 7", "Apple M3", "Apple M4", "AMD Ryzen 5"]
            ),
        },
        "count": 32,
    },
    "apparel": {
        "zh": "服装",
        "en": "Apparel",
        "nouns": [
            ("T恤", "T-shirt"),
            ("卫衣", "hoodie"),
            ("羽绒服", "down jacket"),
            ("牛仔裤", "jeans"),
            ("衬衫", "shirt"),
            ("连衣裙", "dress"),
            ("运动裤", "sweatpants"),
        ],
        "brands": [
            ("优衣库", "Uniqlo"),
            ("李宁", "Li-Ning"),
            ("安踏", "Anta"),
            ("波司登", "Bosideng"),
            ("太平鸟", "Peacebird"),
            ("森马", "Semir"),
            ("海澜之家", "HLA"),
        ],
        "lines": ["{b} {noun}"],
        "price": (59, 1999),
        "step": 10,
        "ending": -1,
        "sizes": ["S", "M", "L", "XL", "XXL"],
        "colours": ["black", "white", "grey", "blue", "red", "green", "pink", "beige", "yellow", "brown"],
        "specs": lambda r: {
            "material": r.choice(["纯棉 cotton", "涤纶 polyester", "羊毛 wool", "鹅绒 goose down", "棉麻 linen blend"]),
            "fit": r.choice(["修身 slim", "宽松 loose", "常规 regular"]),
        },
        "count": 42,
    },
    "shoes": {
        "zh": "鞋靴",
        "en": "Shoes",
        "nouns": [
            ("运动鞋", "sneakers"),
            ("跑鞋", "running shoes"),
            ("板鞋", "skate shoes"),
            ("皮鞋", "leather shoes"),
            ("拖鞋", "slippers"),
            ("篮球鞋", "basketball shoes"),
        ],
        "brands": [
            ("耐克", "Nike"),
            ("阿迪达斯", "Adidas"),
            ("李宁", "Li-Ning"),
            ("安踏", "Anta"),
            ("特步", "Xtep"),
            ("回力", "Warrior"),
            ("新百伦", "New Balance"),
        ],
        "lines": ["{b} {noun}"],
        "price": (39, 1499),
        "step": 10,
        "ending": -1,
        "sizes": ["36", "37", "38", "39", "40", "41", "42", "43", "44", "45"],
        "colours": ["black", "white", "grey", "blue", "red", "pink", "green", "brown"],
        "specs": lambda r: {
            "upper": r.choice(["网面 mesh", "皮革 leather", "帆布 canvas", "飞织 knit"]),
            "sole": r.choice(["橡胶 rubber", "EVA", "碳板 carbon plate"]),
        },
        "count": 40,
    },
    "appliance": {
        "zh": "家用电器",
        "en": "Home appliances",
        "nouns": [
            ("空气炸锅", "air fryer", ["3L", "4L", "5L", "6L"]),
            ("电饭煲", "rice cooker", ["3L", "4L", "5L"]),
            ("扫地机器人", "robot vacuum", ["标准版", "自动集尘版"]),
            ("电水壶", "electric kettle", ["1.5L", "1.7L", "2L"]),
            ("吹风机", "hair dryer", ["标准版", "高速版"]),
            ("空气净化器", "air purifier", ["标准版", "大面积版"]),
            ("微波炉", "microwave oven", ["20L", "23L", "25L"]),
        ],
        "brands": [
            ("美的", "Midea"),
            ("九阳", "Joyoung"),
            ("苏泊尔", "Supor"),
            ("格力", "Gree"),
            ("海尔", "Haier"),
            ("小米", "Xiaomi"),
            ("戴森", "Dyson"),
            ("飞利浦", "Philips"),
        ],
        "lines": ["{b} {noun}"],
        "price": (59, 4999),
        "step": 10,
        "ending": -1,
        "colours": ["white", "black", "grey", "silver", "pink", "green"],
        "specs": lambda r: {
            "power_w": r.choice([800, 1000, 1200, 1500, 1800, 2000]),
            "warranty_years": r.choice([1, 2, 3]),
        },
        "count": 40,
    },
    "beauty": {
        "zh": "美妆个护",
        "en": "Beauty",
        "nouns": [
            ("面霜", "face cream", ["30ml", "50ml", "75ml"]),
            ("精华", "serum", ["30ml", "50ml", "100ml"]),
            ("口红", "lipstick", ["3.5g"]),
            ("防晒霜", "sunscreen", ["30ml", "50ml", "100ml"]),
            ("洗面奶", "facial cleanser", ["100ml", "120ml", "150ml"]),
            ("爽肤水", "toner", ["150ml", "200ml", "400ml"]),
        ],
        "brands": [
            ("兰蔻", "Lancome"),
            ("雅诗兰黛", "Estee Lauder"),
            ("欧莱雅", "L'Oreal"),
            ("资生堂", "Shiseido"),
            ("珀莱雅", "Proya"),
            ("完美日记", "Perfect Diary"),
            ("花西子", "Florasis"),
            ("薇诺娜", "Winona"),
        ],
        "lines": ["{b} {noun}"],
        "price": (49, 1599),
        "step": 1,
        "ending": 9,
        "colours": ["red", "pink", "orange", "brown"],
        "colour_nouns": {"口红"},
        "specs": lambda r: {
            "skin_type": r.choice(["所有肤质 all skin types", "干性 dry", "油性 oily", "敏感 sensitive"]),
            "shelf_life_months": r.choice([24, 36]),
        },
        "count": 36,
    },
    "food": {
        "zh": "食品饮料",
        "en": "Food & drinks",
        "nouns": [
            ("坚果礼盒", "nut gift box", ["750g", "1kg", "1.5kg"]),
            ("咖啡", "coffee", ["250g", "500g", "1kg"]),
            ("茶叶", "tea", ["100g", "250g", "500g"]),
            ("牛奶", "milk", ["12x250ml", "24x250ml"]),
            ("零食大礼包", "snack pack", ["1kg", "2kg"]),
            ("蜂蜜", "honey", ["500g", "1kg"]),
        ],
        "brands": [
            ("三只松鼠", "Three Squirrels"),
            ("良品铺子", "Bestore"),
            ("百草味", "Be&Cheery"),
            ("雀巢", "Nestle"),
            ("伊利", "Yili"),
            ("蒙牛", "Mengniu"),
            ("瑞幸", "Luckin"),
        ],
        "lines": ["{b} {noun}"],
        "price": (19, 399),
        "step": 1,
        "ending": 9,
        "colours": [],
        "specs": lambda r: {
            "shelf_life_months": r.choice([6, 9, 12, 18]),
            "origin": r.choice(
                ["云南 Yunnan", "新疆 Xinjiang", "内蒙古 Inner Mongolia", "浙江 Zhejiang", "进口 imported"]
            ),
        },
        "count": 34,
    },
    "home": {
        "zh": "家居日用",
        "en": "Home goods",
        "nouns": [
            ("四件套", "bedding set", ["1.5m", "1.8m", "2.0m"]),
            ("枕头", "pillow", ["48x74cm", "40x60cm"]),
            ("收纳箱", "storage box", ["30L", "55L", "80L"]),
            ("保温杯", "vacuum flask", ["350ml", "500ml", "750ml"]),
            ("毛巾", "towel", ["34x76cm", "70x140cm"]),
            ("台灯", "desk lamp", ["标准版"]),
        ],
        "brands": [
            ("网易严选", "NetEase Yanxuan"),
            ("无印良品", "MUJI"),
            ("宜家", "IKEA"),
            ("罗莱", "Luolai"),
            ("水星家纺", "Mercury"),
            ("膳魔师", "Thermos"),
            ("象印", "Zojirushi"),
        ],
        "lines": ["{b} {noun}"],
        "price": (29, 1299),
        "step": 1,
        "ending": 9,
        "colours": ["white", "grey", "blue", "pink", "beige", "green", "black"],
        "specs": lambda r: {
            "material": r.choice(
                ["纯棉 cotton", "不锈钢 stainless steel", "PP塑料 PP plastic", "乳胶 latex", "竹纤维 bamboo fibre"]
            )
        },
        "count": 36,
    },
    "audio": {
        "zh": "耳机音响",
        "en": "Headphones & speakers",
        "nouns": [("耳机", "earbuds"), ("头戴式耳机", "headphones"), ("蓝牙音箱", "Bluetooth speaker")],
        "brands": [
            ("苹果", "Apple"),
            ("华为", "Huawei"),
            ("小米", "Xiaomi"),
            ("索尼", "Sony"),
            ("漫步者", "Edifier"),
            ("Bose", "Bose"),
            ("JBL", "JBL"),
        ],
        "lines": ["{b} {noun}"],
        "price": (99, 3999),
        "step": 10,
        "ending": -1,
        "sizes": ["标准版"],
        "colours": ["black", "white", "blue", "silver", "pink"],
        "specs": lambda r: {"battery_hours": r.choice([6, 8, 24, 30, 40]), "noise_cancelling": r.choice([True, False])},
        "count": 26,
    },
}

SKU_PREFIX = {
    "phone": "PHN",
    "laptop": "LAP",
    "apparel": "APR",
    "shoes": "SHO",
    "appliance": "APL",
    "beauty": "BEA",
    "food": "FOD",
    "home": "HOM",
    "audio": "AUD",
}

SERIES = ["", " Pro", " Plus", " Max", " Lite", " SE", " Air", " 2", " 3", " Neo"]


def _price(rng: random.Random, low: int, high: int, step: int, ending: int) -> float:
    value = rng.randrange(low, high + 1, step) if step > 1 else rng.randint(low, high)
    if ending >= 0:
        value = (value // 10) * 10 + ending
    elif step >= 100:
        value = (value // 100) * 100 + 99  # 1999-style prices
    return float(max(value, low))


def build() -> list[dict]:
    rng = random.Random(SEED)
    products: list[dict] = []
    seen_names: set[str] = set()
    for category, spec in CATEGORIES.items():
        made = 0
        attempts = 0
        while made < spec["count"]:
            attempts += 1
            assert attempts < 10_000, category
            brand_zh, brand_en = rng.choice(spec["brands"])
            noun_zh, noun_en, *noun_sizes = rng.choice(spec["nouns"])
            if "numbers" in spec:
                line = rng.choice(spec["lines"])
                number = rng.choice(spec["numbers"])
                name_en = line.format(b=brand_en, n=number)
                name_zh = line.format(b=brand_zh, n=number) + " " + noun_zh
                name_en = f"{name_en} {noun_en}"
            else:
                series = rng.choice(SERIES)
                name_zh = f"{brand_zh}{series} {noun_zh}".replace("  ", " ")
                name_en = f"{brand_en}{series} {noun_en}"
            if name_en in seen_names:
                continue
            seen_names.add(name_en)
            colour_pool = spec["colours"]
            if spec.get("colour_nouns") is not None and noun_zh not in spec["colour_nouns"]:
                colour_pool = []
            colours = sorted(rng.sample(colour_pool, k=min(len(colour_pool), rng.randint(1, 4)))) if colour_pool else []
            sizes = noun_sizes[0] if noun_sizes else spec["sizes"]
            chosen_sizes = sorted(rng.sample(sizes, k=min(len(sizes), rng.randint(1, 4))), key=sizes.index)
            stock = 0 if rng.random() < 0.15 else rng.randint(1, 500)
            made += 1
            products.append(
                {
                    "sku": f"{SKU_PREFIX[category]}-{made:04d}",
                    "category": category,
                    "category_zh": spec["zh"],
                    "category_en": spec["en"],
                    "brand_zh": brand_zh,
                    "brand_en": brand_en,
                    "noun_zh": noun_zh,
                    "noun_en": noun_en,
                    "name_zh": name_zh,
                    "name_en": name_en,
                    "price": _price(rng, *spec["price"], spec["step"], spec["ending"]),
                    "colors": [{"zh": COLOURS[c], "en": c} for c in colours],
                    "sizes": chosen_sizes,
                    "stock": stock,
                    "specs": spec["specs"](rng),
                }
            )
    return products


def main() -> None:
    products = build()
    assert len({p["sku"] for p in products}) == len(products), "SKUs must be unique"
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as handle:
        for product in products:
            handle.write(json.dumps(product, ensure_ascii=False, sort_keys=False) + "\n")
    print(f"{len(products)} products in {len({p['category'] for p in products})} categories -> {OUT}")


if __name__ == "__main__":
    main()
