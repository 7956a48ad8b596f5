#pragma once
// Tells a service manager how the server is doing (systemd's sd_notify protocol:
// Type=notify units wait for READY=1). A no-op when not started by systemd or
// when nibble was built without libsystemd.
#include <string>

namespace nibble::server {

void notify_ready(const std::string& status);
void notify_stopping();

}  // namespace nibble::server
