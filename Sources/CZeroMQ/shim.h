// libzmq 4.3 (Debian libzmq3-dev). Only the Transport module touches this.
#pragma once
#include <zmq.h>
