"""What makes a change to a Job or Task decide which code runs (decision 0011). Pure.

Two kinds of change put code on the pool (with the emulator: on the host, as the
server's user):

* the Job's ``command_line``, ``image`` and ``container_run_options`` overrides: the
  program itself, the container it runs in, and ``docker run`` options (``--privileged``,
  ``-v /:/host``);
* a parameter whose **name** a loader, shell or interpreter reads as code or as where
  to load code from: its value reaches the task as an environment variable of that name.

The names are those that programs themselves act on, whatever the template's command
does. Sources: glibc's secure-execution list (ld.so(8), the variables it drops for
set-user-ID programs), sudo's default ``env_delete`` list (sudoers(5)), and each
runtime's documented start-up hooks. Left out on purpose, because they select data rather
than code: DNS (``HOSTALIASES``, ``RES_OPTIONS``), locale and terminal databases
(``LOCPATH``, ``NLSPATH``, ``TERMINFO``), ``TMPDIR``, ``HOME``. A template whose command
evaluates a parameter (``sh -c "$CMD"``) makes that parameter code too; that is the
template author's decision, made where admins keep the templates.

Names compare case-insensitively: Windows pools treat ``Path`` and ``PATH`` as one.
"""

from __future__ import annotations

from collections.abc import Mapping

from polysync.domain.models import JobOverrides

__all__ = [
    "CODE_BEARING_NAMES",
    "CODE_BEARING_PREFIXES",
    "CODE_OVERRIDE_FIELDS",
    "changed_code_overrides",
    "is_code_bearing_name",
]

#: Job overrides that are code: the task's program, its image and its container options.
CODE_OVERRIDE_FIELDS = ("command_line", "image", "container_run_options")

#: Families of names, by prefix.
CODE_BEARING_PREFIXES = (
    "LD_",  # the dynamic loader: LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT, … (ld.so(8))
    "DYLD_",  # macOS's loader (the emulator runs tasks on a developer's Mac too)
    "BASH_FUNC_",  # bash imports exported functions from these
    "GIT_CONFIG_",  # GIT_CONFIG_COUNT/KEY_n/VALUE_n set any git option (core.sshCommand)
    "COR_",  # .NET Framework profiler: COR_ENABLE_PROFILING, COR_PROFILER_PATH load a DLL
    "CORECLR_",  # .NET profiler: CORECLR_ENABLE_PROFILING, CORECLR_PROFILER_PATH[_64]
    "LUA_",  # LUA_INIT is Lua source run at start-up; LUA_PATH/LUA_CPATH (and _5_4 forms)
)

#: Single names: the value is code, a file or directory code is loaded from, or options
#: that accept a code-loading flag.
CODE_BEARING_NAMES = frozenset(
    {
        # Which programs run at all.
        "PATH",
        "PATHEXT",  # Windows: which extensions are programs
        "COMSPEC",  # Windows: the shell `cmd /c` and system() start
        "GCONV_PATH",  # glibc's iconv loads modules (shared objects) from here
        # Shells.
        "BASH_ENV",  # a file bash sources before a script
        "ENV",  # the same for sh/ksh
        "SHELLOPTS",  # with xtrace, PS4 below is expanded (command substitution) per line
        "BASHOPTS",
        "PS4",
        "PROMPT_COMMAND",
        "IFS",  # older shells split `$CMD args` with an inherited IFS (sudo drops it)
        "FPATH",  # ksh/zsh autoload functions from here
        "ZDOTDIR",  # zsh sources its start-up files from here
        "NULLCMD",  # zsh runs this for a bare redirection
        "READNULLCMD",
        # Python.
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONSTARTUP",
        "PYTHONUSERBASE",  # user site-packages: .pth files there run code
        "PYTHONPLATLIBDIR",
        "PYTHONPYCACHEPREFIX",  # bytecode is read from here
        "PYTHONBREAKPOINT",  # imports and calls the named callable
        "PYTHONWARNINGS",  # a warning category is imported by module path
        "BROWSER",  # webbrowser runs this command (reachable through PYTHONWARNINGS)
        # Perl, Ruby, Node.js, Tcl, PHP, R, Julia.
        "PERL5OPT",
        "PERL5LIB",
        "PERLLIB",
        "PERL5DB",
        "RUBYOPT",
        "RUBYLIB",
        "NODE_OPTIONS",  # --require / --import load a module first
        "NODE_PATH",
        "TCLLIBPATH",
        "PHPRC",  # php.ini: auto_prepend_file runs code
        "PHP_INI_SCAN_DIR",
        "R_PROFILE",
        "R_PROFILE_USER",
        "R_ENVIRON",
        "R_ENVIRON_USER",
        "R_LIBS",
        "R_LIBS_USER",
        "R_LIBS_SITE",
        "JULIA_LOAD_PATH",
        "JULIA_DEPOT_PATH",  # config/startup.jl runs at start
        # JVM and .NET.
        "JAVA_TOOL_OPTIONS",  # -javaagent: loads a jar into every JVM
        "_JAVA_OPTIONS",
        "JDK_JAVA_OPTIONS",
        "CLASSPATH",
        "DOTNET_STARTUP_HOOKS",  # assemblies run before Main
        "DOTNET_ADDITIONAL_DEPS",
        # Libraries that load plug-ins.
        "OPENSSL_CONF",  # can load engines and providers (shared objects)
        "OPENSSL_ENGINES",
        "OPENSSL_MODULES",
        # Commands other programs run for you.
        "EDITOR",
        "VISUAL",
        "PAGER",
        "LESSOPEN",  # less runs it as an input filter
        "LESSCLOSE",
        "SSH_ASKPASS",
        "GIT_SSH",
        "GIT_SSH_COMMAND",
        "GIT_EXEC_PATH",
        "GIT_EDITOR",
        "GIT_SEQUENCE_EDITOR",
        "GIT_PAGER",
        "GIT_ASKPASS",
        "GIT_EXTERNAL_DIFF",
        "GIT_PROXY_COMMAND",
        "GIT_TEMPLATE_DIR",  # hooks copied into new repositories
        # PowerShell auto-loads modules from these directories.
        "PSMODULEPATH",
    }
)


def is_code_bearing_name(name: str) -> bool:
    """Whether a parameter of this name turns its value into code on the pool."""
    upper = name.upper()
    return upper in CODE_BEARING_NAMES or upper.startswith(CODE_BEARING_PREFIXES)


def changed_code_overrides(current: JobOverrides, updates: Mapping[str, object]) -> list[str]:
    """The code-bearing override fields ``updates`` would change (None drops one).

    Only changes count: a form that sends a field back unchanged asks for nothing.
    """
    return [
        name
        for name in CODE_OVERRIDE_FIELDS
        if name in updates and updates[name] != getattr(current, name)
    ]
