// Compose interpolation and .env parsing.
#include <gtest/gtest.h>

#include "base/error.h"
#include "spec/interpolate.h"

using namespace berth::spec;

namespace {

const Environment kEnv = {{"SET", "value"}, {"EMPTY", ""}, {"PORT", "8080"}, {"NAME", "web"}};

std::string expand(const std::string& s, std::map<std::string, std::string>* missing = nullptr) {
  InterpolationContext ctx{kEnv, missing};
  return interpolate(s, ctx, "f.yaml:1:1");
}

std::string error_of(const std::string& s) {
  try {
    expand(s);
  } catch (const berth::Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(SpecInterpolate, PlainAndBracedVariables) {
  EXPECT_EQ(expand("$SET"), "value");
  EXPECT_EQ(expand("${SET}"), "value");
  EXPECT_EQ(expand("a${SET}b$PORT-c"), "avalueb8080-c");
  EXPECT_EQ(expand("no variables"), "no variables");
}

TEST(SpecInterpolate, DefaultForms) {
  EXPECT_EQ(expand("${UNSET:-d}"), "d");
  EXPECT_EQ(expand("${EMPTY:-d}"), "d");
  EXPECT_EQ(expand("${SET:-d}"), "value");
  EXPECT_EQ(expand("${UNSET-d}"), "d");
  EXPECT_EQ(expand("${EMPTY-d}"), "");
  EXPECT_EQ(expand("${SET-d}"), "value");
}

TEST(SpecInterpolate, AlternativeForms) {
  EXPECT_EQ(expand("${SET:+alt}"), "alt");
  EXPECT_EQ(expand("${EMPTY:+alt}"), "");
  EXPECT_EQ(expand("${UNSET:+alt}"), "");
  EXPECT_EQ(expand("${EMPTY+alt}"), "alt");
  EXPECT_EQ(expand("${UNSET+alt}"), "");
}

TEST(SpecInterpolate, RequiredForms) {
  EXPECT_EQ(expand("${SET:?boom}"), "value");
  EXPECT_EQ(expand("${EMPTY?boom}"), "");
  EXPECT_EQ(error_of("${UNSET:?please set it}"),
            "f.yaml:1:1: required variable UNSET is missing a value: please set it in \"${UNSET:?please set it}\"");
  EXPECT_NE(error_of("${EMPTY:?x}").find("required variable EMPTY"), std::string::npos);
  EXPECT_NE(error_of("${UNSET?x}").find("required variable UNSET"), std::string::npos);
}

TEST(SpecInterpolate, NestedDefaults) {
  EXPECT_EQ(expand("${UNSET:-${PORT}}"), "8080");
  EXPECT_EQ(expand("${UNSET:-${ALSO_UNSET:-deep}}"), "deep");
  EXPECT_EQ(expand("${UNSET:-x${NAME}y}"), "xweby");
  // A required check inside an unused default never fires.
  EXPECT_EQ(expand("${SET:-${UNSET:?never}}"), "value");
}

TEST(SpecInterpolate, DollarDollarIsALiteralDollar) {
  EXPECT_EQ(expand("$$SET"), "$SET");
  EXPECT_EQ(expand("cost: $$5"), "cost: $5");
  EXPECT_EQ(expand("${UNSET:-$$}"), "$");
}

TEST(SpecInterpolate, MissingVariablesAreReportedAndBlank) {
  std::map<std::string, std::string> missing;
  EXPECT_EQ(expand("a${NOPE}b", &missing), "ab");
  ASSERT_EQ(missing.count("NOPE"), 1u);
  EXPECT_EQ(missing["NOPE"], "f.yaml:1:1");
}

TEST(SpecInterpolate, BadSyntaxIsALocatedError) {
  EXPECT_NE(error_of("${SET").find("f.yaml:1:1: invalid interpolation format: missing \"}\""), std::string::npos);
  EXPECT_NE(error_of("${}").find("bad variable name"), std::string::npos);
  EXPECT_NE(error_of("${1X}").find("bad variable name"), std::string::npos);
  EXPECT_NE(error_of("a $ b").find("invalid interpolation format"), std::string::npos);
  EXPECT_NE(error_of("end$").find("lone \"$\""), std::string::npos);
  EXPECT_NE(error_of("${SET:x}").find("unexpected"), std::string::npos);
}

TEST(SpecInterpolate, DotenvSyntax) {
  Environment out;
  parse_dotenv(
      "# comment\n"
      "A=1\n"
      "export B=two\n"
      "C='single $A'\n"
      "D=\"double ${A}\\n\"\n"
      "E=unquoted # trailing comment\n"
      "F=${A}-${OUTER}\n"
      "\n"
      "G=\"multi\nline\"\n"
      "H=\n",
      ".env", {{"OUTER", "out"}}, out);
  EXPECT_EQ(out["A"], "1");
  EXPECT_EQ(out["B"], "two");
  EXPECT_EQ(out["C"], "single $A");
  EXPECT_EQ(out["D"], "double 1\n");
  EXPECT_EQ(out["E"], "unquoted");
  EXPECT_EQ(out["F"], "1-out");
  EXPECT_EQ(out["G"], "multi\nline");
  EXPECT_EQ(out["H"], "");
  EXPECT_EQ(out.count("OUTER"), 0u);
}

TEST(SpecInterpolate, DotenvErrorsAreLocated) {
  Environment out;
  try {
    parse_dotenv("A=1\nB x\n", "/p/.env", {}, out);
    FAIL() << "no error";
  } catch (const berth::Error& e) {
    EXPECT_EQ(std::string(e.what()), "/p/.env:2:1: expected \"=\" after \"B\"");
  }
}
