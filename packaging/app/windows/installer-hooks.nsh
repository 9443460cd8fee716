; Tauri's NSIS installer hooks (bundle.windows.nsis.installerHooks in ../tauri.bundle.json).
;
; The docker CLI runs `docker-credential-hubkey.exe` from PATH, and the installer puts it in
; the install folder: add that folder to the current user's PATH at install, and take exactly
; that entry off at uninstall, leaving every other entry as it was.
;
; Done by PowerShell on the registry value itself, not by NSIS string functions: an NSIS string
; holds 1024 characters, so ReadRegStr/StrCpy would cut a longer PATH and write it back cut;
; and the NSIS that Tauri's bundler uses is the stock one, without the EnVar plugin. The value
; is read unexpanded and written back as REG_EXPAND_SZ, so entries like %USERPROFILE%\bin stay
; as they were. The folder reaches PowerShell through an environment variable, never through
; the command line, so no quoting of it can go wrong. ($$ is a literal $ in NSIS.)

!include WinMessages.nsh

!macro HUBKEY_USER_PATH ACTION
  System::Call 'Kernel32::SetEnvironmentVariable(t "HUBKEY_PATH_DIR", t "$INSTDIR")i'
  System::Call 'Kernel32::SetEnvironmentVariable(t "HUBKEY_PATH_ACTION", t "${ACTION}")i'
  nsExec::ExecToLog `powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -Command "$$d = $$env:HUBKEY_PATH_DIR.TrimEnd('\'); $$k = [Microsoft.Win32.Registry]::CurrentUser.CreateSubKey('Environment'); $$p = [string]$$k.GetValue('Path', '', [Microsoft.Win32.RegistryValueOptions]::DoNotExpandEnvironmentNames); $$e = @($$p -split ';' | Where-Object { $$_ -ne '' -and $$_.TrimEnd('\') -ine $$d }); if ($$env:HUBKEY_PATH_ACTION -eq 'add') { $$e += $$d }; if ($$e.Count -eq 0) { $$k.DeleteValue('Path', $$false) } else { $$k.SetValue('Path', ($$e -join ';'), [Microsoft.Win32.RegistryValueKind]::ExpandString) }"`
  Pop $0
  ; Running programs (Explorer, new terminals) read the new PATH.
  SendMessage ${HWND_BROADCAST} ${WM_SETTINGCHANGE} 0 "STR:Environment" /TIMEOUT=5000
!macroend

!macro NSIS_HOOK_POSTINSTALL
  !insertmacro HUBKEY_USER_PATH add
!macroend

!macro NSIS_HOOK_PREUNINSTALL
  !insertmacro HUBKEY_USER_PATH remove
!macroend
