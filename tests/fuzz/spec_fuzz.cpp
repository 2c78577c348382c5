// libFuzzer target for the spec loader: any bytes must either load (and then
// render and hash without trouble) or fail with berth::Error — never crash,
// hang, leak or blow up memory. Run by scripts/fuzz-spec.
#include <cstddef>
#include <cstdint>
#include <string>

#include "base/error.h"
#include "spec/spec.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  berth::spec::LoadOptions options;
  options.working_directory = "/nonexistent/berth-fuzz";
  options.environment = {{"TAG", "1.0"}, {"EMPTY", ""}, {"HOME", "/root"}};
  options.read_files = false;  // input must not make the loader read /dev/stdin and the like
  try {
    berth::spec::Project project = berth::spec::load_project_from_string(text, options, "fuzz.yaml");
    std::string yaml = berth::spec::to_yaml(project);
    std::string json = berth::spec::to_json(project);
    for (const auto& [name, _] : project.services) (void)berth::spec::service_config_hash(project, name);
    (void)project.service_order();
  } catch (const berth::Error&) {
    // A clean, reported failure is the expected outcome for most inputs.
  }
  return 0;
}
