# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""CloudCIX list semantics: ``page``/``limit``/``order``/``search[...]``/``exclude[...]`` and ``_metadata``.

As CloudCIX's REST framework does (``validate_limit`` and its search filters): unknown search/exclude fields
become *warnings*; a lookup the field's type does not support (``name__gt``) or a malformed range is
skipped with a ``SearchFilterWarning``; an out-of-range or non-integer ``limit`` becomes 50 and a bad
``page`` 0, silently; an ``order`` on anything but the documented fields (name, id, project_id, state; images
also sku_name) falls back to the default silently. A value that cannot be converted to the field's type is
a 400 with the ``..._list_001`` error code.
"""
from __future__ import annotations

import re

LOOKUPS = ('in', 'gt', 'gte', 'lt', 'lte', 'range', 'isnull', 'icontains', 'iexact', 'istartswith', 'iendswith',
           'contains', 'exact', 'startswith', 'endswith')
DEFAULT_LIMIT = 50
MAX_LIMIT = 100
ORDER_FIELDS = ('name', 'id', 'project_id', 'state')
# The lookups each field type supports; any other is skipped with a warning.
TYPE_LOOKUPS = {
    'int': ('', 'exact', 'in', 'gt', 'gte', 'lt', 'lte', 'range', 'isnull'),
    'str': ('', 'exact', 'in', 'isnull', 'icontains', 'iexact', 'istartswith', 'iendswith', 'contains', 'startswith',
            'endswith'),
    'bool': ('', 'exact', 'isnull'),
}
_PARAM = re.compile(r'^(search|exclude)\[([^\]]+)\]$')


class ListError(ValueError):
    """A search value of the wrong type (answered 400)."""


def _split_list(value):
    """``a,b`` or the SDK's Python-repr of a list ``['a', 'b']``."""
    value = value.strip()
    if value.startswith('[') and value.endswith(']'):
        value = value[1:-1]
    return [v.strip().strip('\'"') for v in value.split(',') if v.strip()]


def _convert(kind, value):
    if value is None:
        return None
    if kind == 'int':
        return int(str(value).strip())
    if kind == 'bool':
        low = str(value).strip().lower()
        if low in ('true', '1', 'yes'):
            return True
        if low in ('false', '0', 'no'):
            return False
        raise ValueError(value)
    return str(value)


def _match(actual, lookup, raw, kind):
    if lookup == 'isnull':
        wanted = _convert('bool', raw)
        return (actual is None) == wanted
    if lookup in ('in', 'range'):
        values = [_convert(kind, v) for v in _split_list(raw)]
        if lookup == 'in':
            return actual in values
        if len(values) != 2:
            raise ValueError(raw)
        return actual is not None and values[0] <= actual <= values[1]
    value = _convert(kind, raw)
    if lookup in ('exact', ''):
        return actual == value
    if actual is None:
        return False
    if lookup in ('gt', 'gte', 'lt', 'lte'):
        return {'gt': actual > value, 'gte': actual >= value, 'lt': actual < value, 'lte': actual <= value}[lookup]
    text, value = str(actual), str(value)
    if lookup.startswith('i'):
        text, value = text.lower(), value.lower()
        lookup = lookup[1:]
    if lookup == 'contains':
        return value in text
    if lookup == 'startswith':
        return text.startswith(value)
    if lookup == 'endswith':
        return text.endswith(value)
    return text == value  # iexact


def _int_or(value, default):
    try:
        return int(str(value).strip()) if value is not None else default
    except ValueError:
        return default


def apply(rows, query, fields, default_order='name'):
    """Filter, order and paginate.

    rows: list of (flat_row, content) pairs, flat_row holding the filterable values.
    query: dict of query parameter -> last value.
    fields: dict of filterable field -> 'int' | 'str' | 'bool'.
    Returns (content list, _metadata dict).
    """
    warnings = []
    filters = []
    for key, raw in query.items():
        found = _PARAM.match(key)
        if not found:
            continue
        mode, spec = found.groups()
        field, lookup = spec, ''
        for candidate in LOOKUPS:
            if spec.endswith('__' + candidate):
                field, lookup = spec[:-len(candidate) - 2], candidate
                break
        if field not in fields:
            warnings.append('Invalid %s field "%s" has been ignored.' % (mode, spec))
            continue
        if lookup not in TYPE_LOOKUPS[fields[field]] or (lookup == 'range' and len(_split_list(raw)) != 2):
            warnings.append('SearchFilterWarning: %s[%s] was skipped.' % (mode, spec))
            continue
        filters.append((mode, field, lookup, raw))
    try:
        selected = []
        for row, content in rows:
            keep = True
            for mode, field, lookup, raw in filters:
                hit = _match(row.get(field), lookup, raw, fields[field])
                if (mode == 'search' and not hit) or (mode == 'exclude' and hit):
                    keep = False
                    break
            if keep:
                selected.append((row, content))
    except (TypeError, ValueError) as exc:
        raise ListError(str(exc)) from exc

    order = query.get('order') or default_order
    field = order[1:] if order.startswith('-') else order
    if field not in fields or field not in ORDER_FIELDS + (default_order.lstrip('-'),):
        order, field = default_order, default_order.lstrip('-')  # silently, as the framework does

    def sort_key(pair):
        value = pair[0].get(field)
        return (value is None, value if value is not None else 0, pair[0].get('id') or 0)
    selected.sort(key=sort_key, reverse=order.startswith('-'))

    page = _int_or(query.get('page'), 0)
    limit = _int_or(query.get('limit'), DEFAULT_LIMIT)
    if not 1 <= limit <= MAX_LIMIT:
        limit = DEFAULT_LIMIT  # validate_limit: out of range -> the default, no error
    page = page if page >= 0 else 0
    content = [c for _row, c in selected[page * limit:(page + 1) * limit]]
    metadata = {'page': page, 'limit': limit, 'order': order, 'total_records': len(selected), 'warnings': warnings}
    return content, metadata
