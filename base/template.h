// docker's --format: a subset of Go's text/template evaluated against JSON
// (what `inspect`, `ps`, `images`, `volume ls`, ... render).
//
// Supported: text with {{actions}} (and the {{- -}} trim markers); fields
// `.`, `.A.B`, `$`; string, number and bool literals; parenthesised
// pipelines and `|` pipes; {{if}} / {{else if}} / {{else}}, {{range}} (over
// arrays, and over objects by sorted key) and {{with}}, each with {{end}};
// the functions json, index, join, split, upper, lower, title, len, println,
// print, printf (%s %d %v %q %%), eq, ne, lt, le, gt, ge, not, and, or.
// Values print as Go prints them: strings raw, arrays as [a b], objects as
// map[k:v], null as <nil>.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace berth {

// Throws berth::UsageError naming the template position ("template: 1:9:
// ...") for a malformed template, an unknown function or a missing field.
std::string render_template(const std::string& format, const nlohmann::json& data);

// Go's default formatting of a value ({{.}}).
std::string go_format(const nlohmann::json& value);

}  // namespace berth
