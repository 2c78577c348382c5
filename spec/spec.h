#pragma once
#include <string>
namespace berth::spec { std::string placeholder(); }
