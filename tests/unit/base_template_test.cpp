// The Go-template subset behind every --format: what docker users write.
#include <gtest/gtest.h>

#include "base/error.h"
#include "base/template.h"

namespace berth {
namespace {

using json = nlohmann::json;

const json kContainer = json::parse(R"({
  "Id": "abc123",
  "Name": "/web",
  "State": {"Status": "running", "Pid": 42, "Running": true, "ExitCode": 0},
  "Config": {"Cmd": ["sh", "-c", "echo hi"], "Labels": {"tier": "front", "com.example.v": "2"}, "Env": []},
  "NetworkSettings": {"Networks": {"back": {"IPAddress": "172.20.0.3"}, "front": {"IPAddress": "172.19.0.2"}}},
  "Mounts": [{"Source": "/a", "Destination": "/x"}, {"Source": "/b", "Destination": "/y"}],
  "Size": 1.5, "Count": 3.0, "Nothing": null
})");

std::string render(const std::string& t) { return render_template(t, kContainer); }

TEST(Template, FieldsAndText) {
  EXPECT_EQ(render("{{.State.Status}}"), "running");
  EXPECT_EQ(render("pid={{ .State.Pid }} id={{.Id}}"), "pid=42 id=abc123");
  EXPECT_EQ(render("no actions"), "no actions");
  EXPECT_EQ(render(""), "");
  EXPECT_EQ(render("{{$.Name}}"), "/web");
}

TEST(Template, ValuesPrintAsGoPrintsThem) {
  EXPECT_EQ(render("{{.Config.Cmd}}"), "[sh -c echo hi]");
  EXPECT_EQ(render("{{.Config.Labels}}"), "map[com.example.v:2 tier:front]");
  EXPECT_EQ(render("{{.State.Running}} {{.Size}} {{.Count}} {{.Nothing}}"), "true 1.5 3 <nil>");
  EXPECT_EQ(render("{{json .Config.Cmd}}"), R"(["sh","-c","echo hi"])");
  EXPECT_EQ(render("{{json .}}"), kContainer.dump());
  EXPECT_EQ(render("{{.Config.Cmd | json}}"), R"(["sh","-c","echo hi"])");
}

TEST(Template, RangeIfWithAndElse) {
  EXPECT_EQ(render("{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}"), "172.20.0.3 172.19.0.2 ");
  EXPECT_EQ(render("{{range .Mounts}}{{.Source}}:{{.Destination}},{{end}}"), "/a:/x,/b:/y,");
  EXPECT_EQ(render("{{range .Config.Env}}x{{else}}empty{{end}}"), "empty");
  EXPECT_EQ(render("{{if .State.Running}}up{{else}}down{{end}}"), "up");
  EXPECT_EQ(render("{{if eq .State.Status \"exited\"}}a{{else if eq .State.Status \"running\"}}b{{else}}c{{end}}"), "b");
  EXPECT_EQ(render("{{with .State}}{{.Pid}}{{end}}"), "42");
  EXPECT_EQ(render("{{with .Nothing}}x{{else}}none{{end}}"), "none");
  EXPECT_EQ(render("{{if and .State.Running (not .State.ExitCode)}}ok{{end}}"), "ok");
  EXPECT_EQ(render("{{if or .Nothing .Id}}{{.Id}}{{end}}"), "abc123");
}

TEST(Template, Functions) {
  EXPECT_EQ(render("{{index .Config.Labels \"com.example.v\"}}"), "2");
  EXPECT_EQ(render("{{index .Config.Cmd 2}}"), "echo hi");
  EXPECT_EQ(render("{{index .Config.Labels \"missing\"}}"), "<nil>");
  EXPECT_EQ(render("{{join .Config.Cmd \",\"}}"), "sh,-c,echo hi");
  EXPECT_EQ(render("{{upper .State.Status}} {{lower \"AbC\"}} {{title \"hello world\"}}"), "RUNNING abc Hello World");
  EXPECT_EQ(render("{{len .Mounts}} {{len .Name}}"), "2 4");
  EXPECT_EQ(render("{{printf \"%s has %d%%\" .Name .State.Pid}}"), "/web has 42%");
  EXPECT_EQ(render("{{println .Id}}"), "abc123\n");
  EXPECT_EQ(render("{{index (split \"a:b:c\" \":\") 1}}"), "b");
  EXPECT_EQ(render("{{if gt .State.Pid 10}}big{{end}}{{if lt .State.Pid 10}}small{{end}}"), "big");
  EXPECT_EQ(render("{{\"tab\\there\"}}"), "tab\there");
}

TEST(Template, TrimMarkersAndComments) {
  EXPECT_EQ(render("a  {{- .Id -}}  b"), "aabc123b");
  EXPECT_EQ(render("{{range .Mounts -}}\n  {{.Source}}\n{{- end}}"), "/a/b");
  EXPECT_EQ(render("x{{/* note */}}y"), "xy");
}

TEST(Template, ErrorsSayWhatAndWhere) {
  auto message = [](const std::string& t) {
    try {
      render(t);
    } catch (const UsageError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message("{{.Id"), "template: 1: unclosed action");
  EXPECT_NE(message("{{.Nope}}").find("map has no entry for key \"Nope\""), std::string::npos);
  EXPECT_NE(message("{{.State.Pid.X}}").find("can't evaluate field X"), std::string::npos);
  EXPECT_NE(message("{{frob .Id}}").find("function \"frob\" not defined"), std::string::npos);
  EXPECT_NE(message("{{if .Id}}x").find("without {{end}}"), std::string::npos);
  EXPECT_NE(message("{{end}}").find("unexpected {{end}}"), std::string::npos);
  EXPECT_NE(message("{{\"open}}").find("unterminated quoted string"), std::string::npos);
  EXPECT_NE(message("{{json}}").find("wrong number of args for json"), std::string::npos);
  // A malformed template fails before anything is printed.
  EXPECT_NE(message("{{.Id}}{{if}}").find("missing value for if"), std::string::npos);
}

}  // namespace
}  // namespace berth
