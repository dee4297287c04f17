#pragma once
namespace mf { inline constexpr const char* kVersion = "0.1.0"; }
