"""The "economy" pricing configuration and a deterministic estimator.

beds=2, baths=1.5, cleaning_type=deep: base 2*1.0 + ceil(1.5)*0.5 = 3.0 h, x1.5 = 4.5 cleaner hours,
one cleaner, 4.5 h on site, 4.5 h * 35.0 = 157.5 before tax.
"""
from __future__ import annotations

import hashlib
import json
import math

CONFIG = {
    "pricing_config_id": "economy",
    "pricing_config_version": "v1",
    "rate_per_cleaner_hour": 35.0,
    "hours_per_bed": 1.0,
    "hours_per_bath": 0.5,
    "min_cleaner_hours": 3.0,
    "multipliers": {"standard": 1.0, "deep": 1.5, "move_out_empty": 1.8, "move_in_empty": 1.6},
    "heavy_grease_extra_hours": 1.0,
    "multi_floor_extra_hours": 0.5,
    "team_size_thresholds": [[6.0, 1], [12.0, 2], [None, 3]],
    "time_on_site_rounding_hours": 0.5,
    "recurring_discounts": {"weekly": 0.15, "biweekly": 0.10},
    "add_ons": {"oven": 30.0, "fridge": 25.0, "microwave": 10.0, "cabinets": 35.0, "windows_up_to_5": 40.0,
                "balcony": 30.0},
}
CONFIG_HASH = "sha256:" + hashlib.sha256(json.dumps(CONFIG, sort_keys=True).encode()).hexdigest()
CLEANING_TYPES = tuple(CONFIG["multipliers"])
FREQUENCIES = ("one_time", "weekly", "biweekly", "monthly")


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate(body):
    """Errors as [{field, message, type}] (empty when valid)."""
    errors = []
    if not isinstance(body, dict):
        return [{"field": "body", "message": "Input should be a JSON object", "type": "model_type"}]
    beds = body.get("beds")
    if beds is None:
        errors.append({"field": "beds", "message": "Field required", "type": "missing"})
    elif not isinstance(beds, int) or isinstance(beds, bool) or not 0 <= beds <= 10:
        errors.append({"field": "beds", "message": "Input should be an integer between 0 and 10", "type": "int_range"})
    baths = body.get("baths")
    if baths is None:
        errors.append({"field": "baths", "message": "Field required", "type": "missing"})
    elif not _is_number(baths) or not 0 <= baths <= 10:
        errors.append({"field": "baths", "message": "Input should be a number between 0 and 10", "type": "float_range"})
    if body.get("cleaning_type", "standard") not in CLEANING_TYPES:
        errors.append({"field": "cleaning_type", "message": "Input should be one of: %s" % ", ".join(CLEANING_TYPES),
                       "type": "enum"})
    if body.get("frequency", "one_time") not in FREQUENCIES + (None,):
        errors.append({"field": "frequency", "message": "Input should be one of: %s" % ", ".join(FREQUENCIES),
                       "type": "enum"})
    for flag in ("heavy_grease", "multi_floor"):
        if flag in body and not isinstance(body[flag], bool):
            errors.append({"field": flag, "message": "Input should be a valid boolean", "type": "bool_type"})
    add_ons = body.get("add_ons", {})
    if not isinstance(add_ons, dict):
        errors.append({"field": "add_ons", "message": "Input should be an object", "type": "model_type"})
    else:
        for key, value in add_ons.items():
            if key not in CONFIG["add_ons"]:
                errors.append({"field": "add_ons.%s" % key, "message": "Extra inputs are not permitted",
                               "type": "extra_forbidden"})
            elif not isinstance(value, bool):
                errors.append({"field": "add_ons.%s" % key, "message": "Input should be a valid boolean",
                               "type": "bool_type"})
    return errors


# The fields of an estimate answer, as the real service's response model declares them: a lead's
# estimate_snapshot must be a whole answer (the required ones), not a hand-picked part of it.
SNAPSHOT_FIELDS = (
    ("pricing_config_id", "string", True), ("pricing_config_version", "string", True), ("config_hash", "string", True),
    ("rate", "number", True), ("team_size", "integer", True), ("time_on_site_hours", "number", True),
    ("billed_cleaner_hours", "number", True), ("labor_cost", "number", True), ("discount_amount", "number", True),
    ("add_ons_cost", "number", True), ("total_before_tax", "number", True), ("assumptions", "list", False),
    ("missing_info", "list", False), ("confidence", "number", True), ("breakdown", "object", False),
)
BREAKDOWN_FIELDS = ("base_hours", "multiplier", "extra_hours", "total_cleaner_hours", "min_cleaner_hours_applied",
                    "team_size", "time_on_site_hours", "billed_cleaner_hours", "labor_cost", "add_ons_cost",
                    "discount_amount", "total_before_tax")
_TYPE_CHECKS = {
    "string": (lambda v: isinstance(v, str), "Input should be a valid string", "string_type"),
    "number": (_is_number, "Input should be a valid number", "float_type"),
    "integer": (lambda v: isinstance(v, int) and not isinstance(v, bool), "Input should be a valid integer", "int_type"),
    "list": (lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v), "Input should be a valid list of strings",
             "list_type"),
    "object": (lambda v: isinstance(v, dict), "Input should be a valid dictionary", "model_type"),
}


def validate_snapshot(snapshot, prefix):
    """Errors [{field, message, type}] of an estimate answer used as a lead's snapshot: each missing required
    field named, each wrong type named (a partial snapshot gets one error per missing field)."""
    errors = []
    for name, kind, required in SNAPSHOT_FIELDS:
        field_name = "%s.%s" % (prefix, name)
        value = snapshot.get(name)
        if value is None:
            if required:
                errors.append({"field": field_name, "message": "Field required", "type": "missing"})
            continue
        check, message, error_type = _TYPE_CHECKS[kind]
        if not check(value):
            errors.append({"field": field_name, "message": message, "type": error_type})
        elif name == "breakdown":
            for key in BREAKDOWN_FIELDS:
                if value.get(key) is None:
                    errors.append({"field": "%s.%s" % (field_name, key), "message": "Field required", "type": "missing"})
                elif not _is_number(value[key]):
                    errors.append({"field": "%s.%s" % (field_name, key), "message": "Input should be a valid number",
                                   "type": "float_type"})
    return errors


def estimate(body):
    cfg = CONFIG
    beds, baths = body["beds"], float(body["baths"])
    cleaning_type = body.get("cleaning_type", "standard")
    assumptions = []
    base_hours = beds * cfg["hours_per_bed"] + math.ceil(baths) * cfg["hours_per_bath"]
    if baths != math.ceil(baths):
        assumptions.append("baths rounded up to %d for the base hours" % math.ceil(baths))
    multiplier = cfg["multipliers"][cleaning_type]
    extra = 0.0
    if body.get("heavy_grease"):
        extra += cfg["heavy_grease_extra_hours"]
    if body.get("multi_floor"):
        extra += cfg["multi_floor_extra_hours"]
    cleaner_hours = base_hours * multiplier + extra
    if cleaner_hours < cfg["min_cleaner_hours"]:
        assumptions.append("minimum of %.1f cleaner hours applied" % cfg["min_cleaner_hours"])
        cleaner_hours = cfg["min_cleaner_hours"]
    team_size = 1
    for limit, size in cfg["team_size_thresholds"]:
        team_size = size
        if limit is None or cleaner_hours <= limit:
            break
    step = cfg["time_on_site_rounding_hours"]
    time_on_site = math.ceil(cleaner_hours / team_size / step) * step
    billed = team_size * time_on_site
    labor = billed * cfg["rate_per_cleaner_hour"]
    add_ons_cost = sum((price for name, price in cfg["add_ons"].items() if (body.get("add_ons") or {}).get(name)), 0.0)
    discount_rate = cfg["recurring_discounts"].get(body.get("frequency") or "one_time", 0.0)
    discount = labor * discount_rate
    total = round(labor - discount + add_ons_cost, 2)
    assumptions.append("rate %.2f per cleaner hour (%s)" % (cfg["rate_per_cleaner_hour"], cfg["pricing_config_id"]))
    breakdown = {
        "base_hours": base_hours, "multiplier": multiplier, "extra_hours": extra,
        "total_cleaner_hours": cleaner_hours, "min_cleaner_hours_applied": cfg["min_cleaner_hours"],
        "team_size": team_size, "time_on_site_hours": time_on_site, "billed_cleaner_hours": billed,
        "labor_cost": round(labor, 2), "add_ons_cost": round(add_ons_cost, 2),
        "discount_amount": round(discount, 2), "total_before_tax": total,
    }
    return {
        "pricing_config_id": cfg["pricing_config_id"], "pricing_config_version": cfg["pricing_config_version"],
        "config_hash": CONFIG_HASH, "rate": cfg["rate_per_cleaner_hour"], "team_size": team_size,
        "time_on_site_hours": time_on_site, "billed_cleaner_hours": billed, "labor_cost": round(labor, 2),
        "discount_amount": round(discount, 2), "add_ons_cost": round(add_ons_cost, 2), "total_before_tax": total,
        "assumptions": assumptions, "missing_info": [], "confidence": 1.0, "breakdown": breakdown,
    }
