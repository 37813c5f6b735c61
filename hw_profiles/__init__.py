"""Device profiles as data (one YAML per device), their schema and loading, and the code that measures this machine.

`load_profile(name_or_path)`, `list_profiles()`, `DeviceProfile`, `ProfileError`; `new_profile` and
`start_profile` begin the profile of a device we do not ship. Measuring lives in
`hw_profiles.measure` (imported on demand: it needs torch).
"""

from hw_profiles.create import check_device_name, new_profile, parse_specs, start_profile
from hw_profiles.schema import SOURCES, DeviceProfile, Figure, ProfileError
from hw_profiles.store import list_profiles, load_profile, profile_path, save_profile, user_profiles_dir

__all__ = ["DeviceProfile", "Figure", "ProfileError", "SOURCES", "load_profile", "list_profiles", "profile_path",
           "save_profile", "user_profiles_dir", "new_profile", "start_profile", "parse_specs", "check_device_name"]
