#include "nibble/server/service_notify.h"

#ifdef NIBBLE_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

namespace nibble::server {

void notify_ready([[maybe_unused]] const std::string& status) {
#ifdef NIBBLE_HAVE_SYSTEMD
  std::string message = "READY=1\nSTATUS=" + status;
  sd_notify(0, message.c_str());
#endif
}

void notify_stopping() {
#ifdef NIBBLE_HAVE_SYSTEMD
  sd_notify(0, "STOPPING=1\nSTATUS=draining in-flight requests");
#endif
}

}  // namespace nibble::server
