"""The fake organisation's fixed reference data: an Australian chart of accounts, tax rates,
tracking categories and the name pools the generator draws from.

Kept apart from the generator so the ledger code reads as rules, not as tables."""
from __future__ import annotations

# Account type -> class (xero-notes §4). Reports group accounts by these.
TYPE_CLASS = {
    "REVENUE": "REVENUE", "SALES": "REVENUE", "OTHERINCOME": "REVENUE",
    "EXPENSE": "EXPENSE", "DIRECTCOSTS": "EXPENSE", "OVERHEADS": "EXPENSE", "DEPRECIATN": "EXPENSE",
    "BANK": "ASSET", "CURRENT": "ASSET", "FIXED": "ASSET", "INVENTORY": "ASSET",
    "NONCURRENT": "ASSET", "PREPAYMENT": "ASSET",
    "CURRLIAB": "LIABILITY", "LIABILITY": "LIABILITY", "TERMLIAB": "LIABILITY", "PAYG": "LIABILITY",
    "EQUITY": "EQUITY",
}

# P&L sections in Xero's order: (title, account types). Costs are shown positive.
PNL_SECTIONS = [
    ("Income", ("REVENUE", "SALES")),
    ("Less Cost of Sales", ("DIRECTCOSTS",)),
    ("Plus Other Income", ("OTHERINCOME",)),
    ("Less Operating Expenses", ("EXPENSE", "OVERHEADS", "DEPRECIATN")),
]
PNL_TYPES = frozenset(t for _, types in PNL_SECTIONS for t in types)

# (code, name, type, tax_type, system_account, bank_account_type, bank_account_number)
# Codes and names follow Xero's AU demo chart, trimmed and renamed for a trades contractor.
ACCOUNTS = [
    ("090", "Business Cheque Account", "BANK", "BASEXCLUDED", "", "BANK", "062000 1234 5678"),
    ("091", "Business Savings Account", "BANK", "BASEXCLUDED", "", "BANK", "062000 8765 4321"),
    ("092", "Business Credit Card", "BANK", "BASEXCLUDED", "", "CREDITCARD", "4564 XXXX XXXX 8812"),
    ("610", "Accounts Receivable", "CURRENT", "BASEXCLUDED", "DEBTORS", "", ""),
    ("620", "Prepayments", "CURRENT", "BASEXCLUDED", "", "", ""),
    ("630", "Inventory", "INVENTORY", "BASEXCLUDED", "", "", ""),
    ("710", "Office Equipment", "FIXED", "INPUT", "", "", ""),
    ("720", "Motor Vehicles", "FIXED", "INPUT", "", "", ""),
    ("800", "Accounts Payable", "CURRLIAB", "BASEXCLUDED", "CREDITORS", "", ""),
    ("820", "GST", "CURRLIAB", "BASEXCLUDED", "GST", "", ""),
    ("825", "PAYG Withholdings Payable", "CURRLIAB", "BASEXCLUDED", "", "", ""),
    ("880", "Owner A Drawings", "EQUITY", "BASEXCLUDED", "", "", ""),
    ("881", "Owner A Funds Introduced", "EQUITY", "BASEXCLUDED", "", "", ""),
    ("960", "Retained Earnings", "EQUITY", "BASEXCLUDED", "RETAINEDEARNINGS", "", ""),
    ("200", "Sales - Installations", "REVENUE", "OUTPUT", "", "", ""),
    ("205", "Sales - Service & Maintenance", "REVENUE", "OUTPUT", "", "", ""),
    ("210", "Sales - Materials Recharged", "SALES", "OUTPUT", "", "", ""),
    ("260", "Other Revenue", "REVENUE", "OUTPUT", "", "", ""),
    ("270", "Interest Income", "OTHERINCOME", "INPUTTAXED", "", "", ""),
    ("275", "Sundry Income", "OTHERINCOME", "OUTPUT", "", "", ""),
    ("310", "Materials Purchased", "DIRECTCOSTS", "INPUT", "", "", ""),
    ("320", "Subcontractors", "DIRECTCOSTS", "INPUT", "", "", ""),
    ("330", "Equipment Hire", "DIRECTCOSTS", "INPUT", "", "", ""),
    ("400", "Advertising", "OVERHEADS", "INPUT", "", "", ""),
    ("404", "Bank Fees", "OVERHEADS", "INPUTTAXED", "", "", ""),
    ("412", "Consulting & Accounting", "OVERHEADS", "INPUT", "", "", ""),
    ("429", "General Expenses", "OVERHEADS", "INPUT", "", "", ""),
    ("433", "Insurance", "OVERHEADS", "INPUT", "", "", ""),
    ("445", "Light, Power, Heating", "OVERHEADS", "INPUT", "", "", ""),
    ("449", "Motor Vehicle Expenses", "OVERHEADS", "INPUT", "", "", ""),
    ("461", "Printing & Stationery", "OVERHEADS", "INPUT", "", "", ""),
    ("469", "Rent", "OVERHEADS", "INPUT", "", "", ""),
    ("473", "Repairs and Maintenance", "OVERHEADS", "INPUT", "", "", ""),
    ("477", "Wages and Salaries", "EXPENSE", "BASEXCLUDED", "", "", ""),
    ("478", "Superannuation", "EXPENSE", "BASEXCLUDED", "", "", ""),
    ("485", "Subscriptions", "OVERHEADS", "INPUT", "", "", ""),
    ("489", "Telephone & Internet", "OVERHEADS", "INPUT", "", "", ""),
    ("493", "Travel - National", "OVERHEADS", "INPUT", "", "", ""),
    ("497", "Bank Revaluations", "OVERHEADS", "BASEXCLUDED", "BANKCURRENCYGAIN", "", ""),
    ("498", "Unrealised Currency Gains", "OVERHEADS", "BASEXCLUDED", "UNREALISEDCURRENCYGAIN", "", ""),
    ("499", "Realised Currency Gains", "OVERHEADS", "BASEXCLUDED", "REALISEDCURRENCYGAIN", "", ""),
]

# AU tax rates: tax type -> (display name, rate in percent). GST is 10%.
TAX_RATES = {
    "OUTPUT": ("GST on Income", 10),
    "INPUT": ("GST on Expenses", 10),
    "EXEMPTOUTPUT": ("GST Free Income", 0),
    "EXEMPTEXPENSES": ("GST Free Expenses", 0),
    "INPUTTAXED": ("Input Taxed", 0),
    "BASEXCLUDED": ("BAS Excluded", 0),
}

# Regions differ in size, job mix and season: (name, weight, peak month, seasonal amplitude,
# growth per year, job-type mix Residential/Commercial/Retrospective).
REGIONS = [
    ("Sydney Metro", 0.38, 10, 0.18, 0.12, (0.50, 0.40, 0.10)),
    ("Hunter", 0.20, 3, 0.25, 0.20, (0.35, 0.55, 0.10)),
    ("Illawarra", 0.16, 11, 0.22, 0.08, (0.65, 0.20, 0.15)),
    ("Central Coast", 0.15, 1, 0.30, 0.15, (0.70, 0.15, 0.15)),
    ("Blue Mountains", 0.11, 4, 0.35, 0.05, (0.60, 0.10, 0.30)),
]
JOB_TYPES = ["Residential", "Commercial", "Retrospective"]

# Sales accounts by job type: (account code, share of the job type's line value).
SALES_MIX = {
    "Residential": (("200", 0.45), ("205", 0.35), ("210", 0.20)),
    "Commercial": (("200", 0.60), ("205", 0.15), ("210", 0.25)),
    "Retrospective": (("205", 0.70), ("210", 0.30)),
}
LINE_TEXT = {
    "200": ["Install split system", "Switchboard upgrade", "Hot water system install",
            "Rough-in and fit-off", "Solar inverter install", "Bathroom fit-out labour"],
    "205": ["Service call-out", "Annual maintenance visit", "Fault finding", "Emergency repair",
            "Compliance inspection", "Preventive maintenance"],
    "210": ["Materials supplied", "Cable and conduit", "Copper pipe and fittings",
            "Fixtures supplied", "Consumables"],
}

FIRST = ["James", "Olivia", "Jack", "Charlotte", "William", "Amelia", "Noah", "Isla", "Thomas",
         "Mia", "Lachlan", "Ava", "Henry", "Grace", "Liam", "Chloe", "Oscar", "Ruby", "Lucas",
         "Sophie", "Ethan", "Zoe", "Mason", "Harper", "Cooper", "Matilda", "Riley", "Evie"]
LAST = ["Smith", "Jones", "Williams", "Brown", "Wilson", "Taylor", "Johnson", "White", "Martin",
        "Anderson", "Thompson", "Nguyen", "Thomas", "Walker", "Harris", "Lee", "Ryan", "Robinson",
        "Kelly", "King", "Davis", "Wright", "Evans", "Roberts", "Green", "Hall", "Wood", "Jackson",
        "Clarke", "Patel", "Khan", "Lewis", "Young", "Mitchell", "Campbell", "Tran", "Chen"]
BIZ_WORDS = ["Harbour", "Coastal", "Summit", "Ironbark", "Bluegum", "Southern Cross", "Pacific",
             "Eastside", "Northern", "Heritage", "Parkside", "Gateway", "Ridgeline", "Wattle",
             "Banksia", "Kingfisher", "Riverside", "Headland", "Sandstone", "Redgum"]
BIZ_KINDS = ["Property Group", "Developments", "Strata Management", "Builders", "Constructions",
             "Real Estate", "Medical Centre", "Childcare", "Hotel", "Bowling Club", "Shopping Centre",
             "Cafe", "Motors", "Fitness", "Dental", "Bakery", "Holdings", "Homes", "Cellars", "Legal"]
SUFFIXES = ["Pty Ltd", "Pty Ltd", "Pty Ltd", "", "Group", "Trust"]
CITIES = {
    "Sydney Metro": [("Parramatta", "2150"), ("Chatswood", "2067"), ("Bondi", "2026"),
                     ("Penrith", "2750"), ("Hurstville", "2220")],
    "Hunter": [("Newcastle", "2300"), ("Maitland", "2320"), ("Cessnock", "2325")],
    "Illawarra": [("Wollongong", "2500"), ("Shellharbour", "2529"), ("Kiama", "2533")],
    "Central Coast": [("Gosford", "2250"), ("Terrigal", "2260"), ("Wyong", "2259")],
    "Blue Mountains": [("Katoomba", "2780"), ("Springwood", "2777"), ("Blackheath", "2785")],
}
STREETS = ["George St", "High St", "Pacific Hwy", "Church St", "Victoria Rd", "King St",
           "Railway Pde", "Station St", "Beach Rd", "Great Western Hwy", "Hunter St", "Crown St"]

# Suppliers: (name, kind, default account, tax type, email domain).
# kind "cos" = cost of sales bills, "overhead" = monthly/quarterly bills.
SUPPLIERS = [
    ("Reece Plumbing Supplies", "cos", "310", "INPUT", "reece.example.com.au"),
    ("Middy's Electrical Wholesale", "cos", "310", "INPUT", "middys.example.com.au"),
    ("Bunnings Trade", "cos", "310", "INPUT", "bunnings.example.com.au"),
    ("Tradelink Pty Ltd", "cos", "310", "INPUT", "tradelink.example.com.au"),
    ("Coates Hire", "cos", "330", "INPUT", "coates.example.com.au"),
    ("Kennards Hire", "cos", "330", "INPUT", "kennards.example.com.au"),
    ("Sparkright Subcontracting", "cos", "320", "INPUT", "sparkright.example.com.au"),
    ("Northern Beaches Plumbing Contractors", "cos", "320", "INPUT", "nbpc.example.com.au"),
    ("Apex Air Conditioning Installers", "cos", "320", "INPUT", "apexair.example.com.au"),
    ("Coastline Scaffolding", "cos", "320", "INPUT", "coastscaff.example.com.au"),
    ("Pacific Industrial Properties", "overhead", "469", "INPUT", "pip.example.com.au"),
    ("AAMI Business Insurance", "overhead", "433", "INPUT", "aami.example.com.au"),
    ("AGL Energy", "overhead", "445", "INPUT", "agl.example.com.au"),
    ("Telstra", "overhead", "489", "INPUT", "telstra.example.com.au"),
    ("Morgan & Co Chartered Accountants", "overhead", "412", "INPUT", "morganco.example.com.au"),
    ("Local Media Advertising", "overhead", "400", "INPUT", "localmedia.example.com.au"),
    ("Officeworks", "overhead", "461", "INPUT", "officeworks.example.com.au"),
    ("simPRO Software", "overhead", "485", "INPUT", "simpro.example.com.au"),
]
